package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/skip2/go-qrcode"
	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/internal/atomicfile"
	"github.com/switchyard/switchyard/routing"
	"github.com/switchyard/switchyard/transport/wireguard"
)

// stockKeepalive is the PersistentKeepalive of a stock device's config: it
// keeps NAT mappings open so that sites can reach the device, and keeps its
// session with the edge fresh (the edge has no heartbeats from it).
const stockKeepalive = 25

func wgConfigCommand() *cli.Command {
	return &cli.Command{
		Name:  "wg-config",
		Usage: "register a stock WireGuard device (wg-quick, a phone's app, a router) and print its config",
		Description: "Without --public-key the private key is generated here and printed in the config, never sent to the edge;\n" +
			"with --public-key the device keeps its own private key. The edge serving this command is the device's only peer.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "device `NAME` (unique among live devices)", Required: true},
			&cli.StringFlag{Name: "public-key", Usage: "the device's WireGuard public `KEY` (base64); the private key stays on the device"},
			&cli.StringFlag{Name: "vnet", Usage: "virtual network `NAME|ID` the device sends into (default: the default vnet)"},
			&cli.StringFlag{Name: "user", Usage: "`EMAIL` of the device's user, which policies match as user_email (default: none)"},
			&cli.StringFlag{Name: "output-file", Aliases: []string{"o"}, Usage: "write the config to `FILE` (mode 0600; wg-quick wants IFNAME.conf) instead of standard output"},
			&cli.BoolFlag{Name: "qr", Usage: "print the config as a QR code for a phone's WireGuard app"},
		},
		Action: withClient(wgConfig),
	}
}

func wgConfig(ctx context.Context, c *cli.Context, api *client.Client) error {
	pub, priv := c.String("public-key"), ""
	if pub != "" {
		if err := model.ValidateKey(pub); err != nil {
			return err
		}
	} else {
		k, err := wireguard.GeneratePrivateKey()
		if err != nil {
			return fmt.Errorf("generate the device's private key: %w", err)
		}
		pk := k.PublicKey()
		pub, priv = pk.String(), base64.StdEncoding.EncodeToString(k[:])
	}
	out := c.String("output-file")
	if out != "" { // refuse an unwritable place before the device exists
		if fi, err := os.Stat(filepath.Dir(out)); err != nil || !fi.IsDir() {
			return model.Errorf(model.KindInvalid, "write config: directory %s does not exist", filepath.Dir(out))
		}
	}
	reg, err := api.RegisterDevice(ctx, model.RegisterDevice{Name: c.String("name"), PublicKey: pub, VNet: c.String("vnet"), User: c.String("user")})
	if err != nil {
		return err
	}
	conf, err := renderWGQuick(reg.Device, reg.Config, priv)
	if err != nil {
		return err
	}
	if out != "" {
		if err := atomicfile.WriteFile(out, []byte(conf), 0o600); err != nil {
			// The device exists now: do not lose its config (and private key).
			fmt.Fprint(c.App.Writer, conf)
			return fmt.Errorf("write config of device %s to %s (printed above instead): %w", reg.Device.Name, out, err)
		}
		fmt.Fprintf(c.App.ErrWriter, "Registered device %s (%s, %s); config written to %s\n", reg.Device.Name, reg.Device.ID, reg.Device.IP, out)
	}
	if c.Bool("qr") {
		q, err := qrcode.New(conf, qrcode.Low)
		if err != nil {
			return fmt.Errorf("encode the config as a QR code: %w", err)
		}
		fmt.Fprint(c.App.Writer, q.ToSmallString(false))
		return nil
	}
	if out == "" {
		fmt.Fprint(c.App.Writer, conf)
	}
	return nil
}

// renderWGQuick renders the wg-quick configuration of stock device d: its
// overlay address, its private key when the CLI generated it (else a comment
// saying that it stays on the device), the edge as its one peer with the
// AllowedIPs that the split tunnel settings give, and a keepalive.
func renderWGQuick(d model.Device, cfg model.DeviceConfig, privateKey string) (string, error) {
	if cfg.Edge.Endpoint == "" || cfg.Edge.PublicKey == "" {
		return "", model.Errorf(model.KindInvalid, "render config of device %s: the edge has no WireGuard endpoint (start it with --public-addr)", d.Name)
	}
	allowed, err := stockAllowedIPs(cfg)
	if err != nil {
		return "", fmt.Errorf("render config of device %s: %w", d.Name, err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Switchyard device %s (%s), virtual network %s\n", d.Name, d.ID, cfg.VNetName)
	fmt.Fprintf(&b, "# wg-quick names the interface after this file: save it as IFNAME.conf\n")
	b.WriteString("[Interface]\n")
	fmt.Fprintf(&b, "Address = %s\n", netip.PrefixFrom(cfg.IP, cfg.IP.BitLen()))
	if privateKey != "" {
		fmt.Fprintf(&b, "PrivateKey = %s\n", privateKey)
	} else {
		fmt.Fprintf(&b, "# PrivateKey: the device's own, whose public key is %s; add it here on the device\n", d.Key)
	}
	if cfg.MTU > 0 {
		fmt.Fprintf(&b, "MTU = %d\n", cfg.MTU)
	}
	b.WriteString("\n[Peer]\n")
	fmt.Fprintf(&b, "# the edge that registered the device\n")
	fmt.Fprintf(&b, "PublicKey = %s\n", cfg.Edge.PublicKey)
	fmt.Fprintf(&b, "Endpoint = %s\n", cfg.Edge.Endpoint)
	strs := make([]string, len(allowed))
	for i, p := range allowed {
		strs[i] = p.String()
	}
	fmt.Fprintf(&b, "AllowedIPs = %s\n", strings.Join(strs, ", "))
	fmt.Fprintf(&b, "PersistentKeepalive = %d\n", stockKeepalive)
	return b.String(), nil
}

// stockAllowedIPs is what a stock device routes to the edge: in Include mode
// the split tunnel's list, in Exclude mode its complement over 0.0.0.0/0
// and ::/0; the overlay range always; never the edge's endpoint address
// (wg-quick installs a route per prefix, and one covering the endpoint
// would loop the tunnel into itself). Domain entries need the client's DNS
// stub: a stock device has none and skips them.
func stockAllowedIPs(cfg model.DeviceConfig) ([]netip.Prefix, error) {
	var list []netip.Prefix
	for _, e := range cfg.SplitTunnel.Entries {
		if e.Address.IsValid() {
			list = append(list, e.Address)
		}
	}
	var never []netip.Addr
	if ap, err := netip.ParseAddrPort(cfg.Edge.Endpoint); err == nil {
		never = append(never, ap.Addr())
	}
	var always []netip.Prefix
	if cfg.OverlayRange.IsValid() {
		always = append(always, cfg.OverlayRange)
	}
	return routing.SplitRoutes(cfg.SplitTunnel.Mode != model.SplitInclude, list, always, never)
}
