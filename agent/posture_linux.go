package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/nftables"
)

// maxBlockDepth bounds the walk down a block device's slaves (dm-crypt
// under LVM under ...): deeper stacks are not seen as encrypted.
const maxBlockDepth = 8

// rootEncrypted reports whether the filesystem mounted at / (as
// proc/self/mountinfo under root says) sits on dm-crypt: its block device,
// or every device beneath it (LVM on LUKS), is a device-mapper target whose
// dm/uuid starts with "CRYPT-". A root that is no block device (overlay,
// tmpfs, NFS) is not encrypted; only a mountinfo that cannot be read is an
// error.
func rootEncrypted(root string) (bool, error) {
	buf, err := os.ReadFile(filepath.Join(root, "proc/self/mountinfo"))
	if err != nil {
		return false, fmt.Errorf("read the root filesystem's device: %w", err)
	}
	var devno, source string
	for line := range strings.Lines(string(buf)) {
		f := strings.Fields(line)
		if len(f) < 5 || f[4] != "/" {
			continue
		}
		devno, source = f[2], ""
		for i := 5; i+2 < len(f); i++ {
			if f[i] == "-" {
				source = f[i+2]
				break
			}
		}
	}
	if devno == "" {
		return false, errors.New("read the root filesystem's device: no mount at / in mountinfo")
	}
	name := ""
	if target, err := os.Readlink(filepath.Join(root, "sys/dev/block", devno)); err == nil {
		name = filepath.Base(target)
	} else if strings.HasPrefix(source, "/dev/") { // btrfs and others show an anonymous device number
		if dev, err := filepath.EvalSymlinks(filepath.Join(root, source)); err == nil {
			name = filepath.Base(dev)
		}
	}
	if name == "" {
		return false, nil
	}
	return blockEncrypted(root, name, 0), nil
}

// blockEncrypted reports whether the block device name is a dm-crypt
// target or sits, through every one of its slaves, on one.
func blockEncrypted(root, name string, depth int) bool {
	if depth > maxBlockDepth {
		return false
	}
	dir := filepath.Join(root, "sys/class/block", name)
	if strings.HasPrefix(readLine(filepath.Join(dir, "dm/uuid")), "CRYPT-") {
		return true
	}
	slaves, err := os.ReadDir(filepath.Join(dir, "slaves"))
	if err != nil || len(slaves) == 0 {
		return false
	}
	for _, s := range slaves {
		if !blockEncrypted(root, s.Name(), depth+1) {
			return false
		}
	}
	return true
}

// firewallActive reports whether the network namespace's nftables ruleset
// (iptables-nft's rules included) has a chain of the ip, ip6 or inet
// family hooked into input or forward: a host firewall. It only reads.
func firewallActive() (bool, error) {
	c, err := nftables.New()
	if err != nil {
		return false, fmt.Errorf("read the nftables ruleset: %w", err)
	}
	chains, err := c.ListChains()
	if err != nil {
		return false, fmt.Errorf("read the nftables ruleset: %w", err)
	}
	for _, ch := range chains {
		switch { // netdev and arp number their hooks otherwise
		case ch.Table == nil, ch.Hooknum == nil:
			continue
		case ch.Table.Family != nftables.TableFamilyINet && ch.Table.Family != nftables.TableFamilyIPv4 && ch.Table.Family != nftables.TableFamilyIPv6:
			continue
		}
		if *ch.Hooknum == *nftables.ChainHookInput || *ch.Hooknum == *nftables.ChainHookForward {
			return true, nil
		}
	}
	return false, nil
}
