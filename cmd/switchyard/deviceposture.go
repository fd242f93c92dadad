package main

import (
	"context"
	"strconv"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/switchyard/switchyard/control/client"
	"github.com/switchyard/switchyard/control/model"
)

// devicePostureCommand is `device posture [DEVICE]`: what each device last
// reported about its host, as policies see it (device.posture.*).
func devicePostureCommand() *cli.Command {
	return &cli.Command{
		Name:      "posture",
		Usage:     "show the posture each device last reported (what device.posture.* policies see)",
		ArgsUsage: "[NAME|ID]",
		Flags:     []cli.Flag{outputFlag},
		Action: withClient(func(ctx context.Context, c *cli.Context, api *client.Client) error {
			if err := checkArgs(c, 0, 1, "[NAME|ID]"); err != nil {
				return err
			}
			devices, err := api.ListDevices(ctx, false)
			if err != nil {
				return err
			}
			devices, err = selectDevices(devices, c.Args().First())
			if err != nil {
				return err
			}
			return render(c, devices, func(w *tabwriter.Writer) {
				row(w, "ID", "NAME", "USER", "OS", "OS VERSION", "KERNEL", "CLIENT", "DISK ENCRYPTED", "FIREWALL", "SERIAL", "NETWORK", "REPORTED")
				for _, d := range devices {
					row(w, postureRow(d)...)
				}
			})
		}),
	}
}

// selectDevices returns the devices that ref names by id or name, every
// device for an empty ref, and a not-found error when it names none.
func selectDevices(devices []model.Device, ref string) ([]model.Device, error) {
	if ref == "" {
		return devices, nil
	}
	var out []model.Device
	for _, d := range devices {
		if d.ID.String() == ref || d.Name == ref {
			out = append(out, d)
		}
	}
	if len(out) == 0 {
		return nil, model.Errorf(model.KindNotFound, "device %q not found", ref)
	}
	return out, nil
}

// postureRow is a device's row of `device posture`: "-" for every posture
// column of a device that never reported.
func postureRow(d model.Device) []any {
	p := d.Posture
	if p == nil {
		return []any{d.ID, d.Name, d.User, "-", "-", "-", "-", "-", "-", "-", "-", "never"}
	}
	return []any{d.ID, d.Name, d.User, p.OS, p.OSVersion, p.Kernel, p.ClientVersion, strconv.FormatBool(p.DiskEncrypted),
		strconv.FormatBool(p.Firewall), p.Serial, p.Network, p.CollectedAt}
}
