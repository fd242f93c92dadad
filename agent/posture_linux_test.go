package agent

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/control/model"
)

// fakeRoot builds a filesystem tree under a temporary root: files (path →
// content) and symlinks (path → target), paths relative to the root.
func fakeRoot(t *testing.T, files, links map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, content := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range links {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// mountinfo is a mountinfo line mounting source (fstype ext4 unless it is
// overlay) at / with device number devno.
func mountinfo(devno, source string) string {
	fstype := "ext4"
	if source == "overlay" {
		fstype = "overlay"
	}
	return "27 1 " + devno + " / / rw,relatime shared:1 - " + fstype + " " + source + " rw\n"
}

const procMounts = "22 27 0:21 / /proc rw,nosuid - proc proc rw\n"

// block is a block device of the fake /sys: its dm/uuid (none when empty)
// and slaves.
func block(files, links map[string]string, name, dmUUID string, slaves ...string) {
	dir := "sys/devices/virtual/block/" + name
	links["sys/class/block/"+name] = "../../devices/virtual/block/" + name
	files[dir+"/dev"] = "0:0\n"
	if dmUUID != "" {
		files[dir+"/dm/uuid"] = dmUUID + "\n"
	}
	for _, s := range slaves {
		links[dir+"/slaves/"+s] = "../../" + s
	}
}

func TestRootEncrypted(t *testing.T) {
	for _, c := range []struct {
		name    string
		build   func(files, links map[string]string)
		want    bool
		wantErr string
	}{
		{"dm-crypt root", func(f, l map[string]string) {
			f["proc/self/mountinfo"] = procMounts + mountinfo("253:0", "/dev/mapper/luks-0b1c")
			l["sys/dev/block/253:0"] = "../../devices/virtual/block/dm-0"
			block(f, l, "dm-0", "CRYPT-LUKS2-0b1c5e7a9d3f-luks-0b1c", "nvme0n1p3")
			block(f, l, "nvme0n1p3", "")
		}, true, ""},
		{"LVM on LUKS", func(f, l map[string]string) {
			f["proc/self/mountinfo"] = mountinfo("253:1", "/dev/mapper/vg0-root") + procMounts
			l["sys/dev/block/253:1"] = "../../devices/virtual/block/dm-1"
			block(f, l, "dm-1", "LVM-Qp3x8Yb0Wc", "dm-0")
			block(f, l, "dm-0", "CRYPT-LUKS2-9a8b-luks-9a8b", "sda3")
			block(f, l, "sda3", "")
		}, true, ""},
		{"LVM on a plain partition", func(f, l map[string]string) {
			f["proc/self/mountinfo"] = mountinfo("253:1", "/dev/mapper/vg0-root")
			l["sys/dev/block/253:1"] = "../../devices/virtual/block/dm-1"
			block(f, l, "dm-1", "LVM-Qp3x8Yb0Wc", "sda3")
			block(f, l, "sda3", "")
		}, false, ""},
		{"LVM over one encrypted and one plain volume", func(f, l map[string]string) {
			f["proc/self/mountinfo"] = mountinfo("253:2", "/dev/mapper/vg0-root")
			l["sys/dev/block/253:2"] = "../../devices/virtual/block/dm-2"
			block(f, l, "dm-2", "LVM-Qp3x8Yb0Wc", "dm-0", "sdb1")
			block(f, l, "dm-0", "CRYPT-LUKS2-9a8b-luks-9a8b", "sda3")
			block(f, l, "sda3", "")
			block(f, l, "sdb1", "")
		}, false, ""},
		{"plain disk", func(f, l map[string]string) {
			f["proc/self/mountinfo"] = mountinfo("8:2", "/dev/sda2")
			l["sys/dev/block/8:2"] = "../../devices/pci0000:00/block/sda/sda2"
			f["sys/devices/pci0000:00/block/sda/sda2/dev"] = "8:2\n"
			l["sys/class/block/sda2"] = "../../devices/pci0000:00/block/sda/sda2"
		}, false, ""},
		{"btrfs on dm-crypt, an anonymous device number", func(f, l map[string]string) {
			f["proc/self/mountinfo"] = mountinfo("0:33", "/dev/mapper/luks-77aa")
			l["dev/mapper/luks-77aa"] = "../dm-0"
			f["dev/dm-0"] = ""
			block(f, l, "dm-0", "CRYPT-LUKS2-77aa-luks-77aa", "nvme0n1p2")
			block(f, l, "nvme0n1p2", "")
		}, true, ""},
		{"the last mount at / counts", func(f, l map[string]string) {
			f["proc/self/mountinfo"] = mountinfo("253:0", "/dev/mapper/luks-0b1c") + mountinfo("8:2", "/dev/sda2")
			l["sys/dev/block/253:0"] = "../../devices/virtual/block/dm-0"
			block(f, l, "dm-0", "CRYPT-LUKS2-0b1c-luks-0b1c")
			l["sys/dev/block/8:2"] = "../../devices/virtual/block/sda2"
			block(f, l, "sda2", "")
		}, false, ""},
		{"overlay root", func(f, l map[string]string) {
			f["proc/self/mountinfo"] = mountinfo("0:45", "overlay")
		}, false, ""},
		{"a dm device that is no crypt target", func(f, l map[string]string) {
			f["proc/self/mountinfo"] = mountinfo("253:0", "/dev/mapper/cache")
			l["sys/dev/block/253:0"] = "../../devices/virtual/block/dm-0"
			block(f, l, "dm-0", "CRYPTX-not-really")
		}, false, ""},
		{"no mountinfo", func(f, l map[string]string) {}, false, "read the root filesystem's device"},
		{"nothing mounted at /", func(f, l map[string]string) { f["proc/self/mountinfo"] = procMounts }, false, "no mount at /"},
	} {
		t.Run(c.name, func(t *testing.T) {
			files, links := map[string]string{}, map[string]string{}
			c.build(files, links)
			got, err := rootEncrypted(fakeRoot(t, files, links))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("rootEncrypted = %v, %v; want an error with %q", got, err, c.wantErr)
				}
				return
			}
			if err != nil || got != c.want {
				t.Fatalf("rootEncrypted = %v, %v; want %v", got, err, c.want)
			}
		})
	}
}

// TestCollectFakeHost: every field from a fake host, the OS version
// falling back on the kernel's, an unreadable serial empty, and the
// readings that fail reported without spoiling the rest.
func TestCollectFakeHost(t *testing.T) {
	nets := []model.PostureNetwork{{Name: "home", Prefix: "192.0.2.0/24"}, {Name: "office", Prefix: "198.51.100.0/24"}, {Name: "lab", Prefix: "2001:db8::/32"}}
	files, links := map[string]string{
		"proc/sys/kernel/osrelease":       "6.1.0-18-amd64\n",
		"etc/os-release":                  "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n",
		"sys/class/dmi/id/product_serial": "PF1A2B3C \n",
		"proc/self/mountinfo":             mountinfo("253:0", "/dev/mapper/luks-0b1c"),
	}, map[string]string{"sys/dev/block/253:0": "../../devices/virtual/block/dm-0"}
	block(files, links, "dm-0", "CRYPT-LUKS2-0b1c-luks-0b1c")
	root := fakeRoot(t, files, links)
	firewall := true
	src := postureSource{root: root,
		firewall: func() (bool, error) { return firewall, nil },
		addrs: func() ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("203.0.113.9"), netip.MustParseAddr("::ffff:198.51.100.7"), netip.MustParseAddr("2001:db8::1")}, nil
		}}
	before := time.Now()
	p, err := src.collect("v1.2.3", nets)
	if err != nil {
		t.Fatal(err)
	}
	want := model.Posture{OS: "linux", OSVersion: "12", Kernel: "6.1.0-18-amd64", ClientVersion: "v1.2.3", DiskEncrypted: true, Firewall: true, Serial: "PF1A2B3C", Network: "office"}
	got := p
	got.CollectedAt = time.Time{}
	if got != want || p.CollectedAt.Before(before) || p.CollectedAt.Location() != time.UTC {
		t.Fatalf("collect = %+v, want %+v collected now in UTC", p, want)
	}

	os.Remove(filepath.Join(root, "etc/os-release"))
	os.Remove(filepath.Join(root, "sys/class/dmi/id/product_serial"))
	os.Remove(filepath.Join(root, "proc/self/mountinfo"))
	firewall = false
	src.addrs = func() ([]netip.Addr, error) { return nil, errors.New("no interfaces here") }
	p, err = src.collect("v1.2.3", nets)
	if err == nil || !strings.Contains(err.Error(), "mountinfo") || !strings.Contains(err.Error(), "no interfaces here") {
		t.Fatalf("collect without mountinfo and interfaces: err %v, want both named", err)
	}
	if p.OSVersion != "6.1.0-18-amd64" || p.Serial != "" || p.DiskEncrypted || p.Firewall || p.Network != "" || p.Kernel != "6.1.0-18-amd64" {
		t.Fatalf("collect of a sparse host = %+v", p)
	}
}

func TestPostureNetwork(t *testing.T) {
	nets := []model.PostureNetwork{{Name: "office", Prefix: "198.51.100.0/24"}, {Name: "campus", Prefix: "198.51.0.0/16"}, {Name: "broken", Prefix: "nope"}, {Name: "v6", Prefix: "2001:db8:1::/48"}}
	for _, c := range []struct {
		addrs []string
		want  string
	}{
		{nil, ""},
		{[]string{"203.0.113.5"}, ""},
		{[]string{"198.51.7.1"}, "campus"},
		{[]string{"198.51.7.1", "198.51.100.20"}, "office"}, // list order, not address order
		{[]string{"2001:db8:1::9"}, "v6"},
		{[]string{"::ffff:198.51.100.20"}, "office"},
	} {
		var addrs []netip.Addr
		for _, a := range c.addrs {
			addrs = append(addrs, netip.MustParseAddr(a))
		}
		if got := postureNetwork(nets, addrs); got != c.want {
			t.Errorf("postureNetwork(%v) = %q, want %q", c.addrs, got, c.want)
		}
	}
}

// TestCollectThisHost reads this machine's real posture: it must not fail
// (as root, which reads the nftables ruleset), and its kernel is uname's.
func TestCollectThisHost(t *testing.T) {
	p, err := hostPosture("sy-none").collect("test", []model.PostureNetwork{{Name: "anywhere", Prefix: "0.0.0.0/0"}, {Name: "anywhere6", Prefix: "::/0"}})
	if err != nil && os.Geteuid() == 0 {
		t.Fatalf("collect this host: %v", err)
	}
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var release strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		release.WriteByte(byte(c))
	}
	if p.OS != "linux" || p.Kernel != release.String() || p.OSVersion == "" || p.ClientVersion != "test" {
		t.Fatalf("this host's posture = %+v (kernel %q)", p, release.String())
	}
	t.Logf("this host: %+v (err %v)", p, err)
}

// TestPostureReporter: a first report at start, none while nothing
// changes, one within an interval of a change, one at once for new
// networks, and one on demand; a failed report is tried again.
func TestPostureReporter(t *testing.T) {
	var mu sync.Mutex
	var firewall bool
	var reports []model.Posture
	var fail error
	src := postureSource{root: t.TempDir(),
		firewall: func() (bool, error) { mu.Lock(); defer mu.Unlock(); return firewall, nil },
		addrs:    func() ([]netip.Addr, error) { return []netip.Addr{netip.MustParseAddr("192.0.2.10")}, nil }}
	report := func(_ context.Context, p model.Posture) (model.Posture, error) {
		mu.Lock()
		defer mu.Unlock()
		if fail != nil {
			return model.Posture{}, fail
		}
		reports = append(reports, p)
		return p, nil
	}
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(reports) }
	last := func() model.Posture { mu.Lock(); defer mu.Unlock(); return reports[len(reports)-1] }
	waitFor := func(what string, n int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for count() < n {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d reports, want %d", what, count(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	r := newPostureReporter(src, "v9", 20*time.Millisecond, report, slog.New(slog.DiscardHandler))
	stop := r.start(context.Background())
	defer stop()
	waitFor("at start", 1)
	time.Sleep(100 * time.Millisecond) // five intervals, nothing changed
	if n := count(); n != 1 {
		t.Fatalf("%d reports while nothing changed, want 1", n)
	}
	mu.Lock()
	firewall, fail = true, errors.New("edge away")
	mu.Unlock()
	time.Sleep(60 * time.Millisecond)
	mu.Lock()
	fail = nil
	mu.Unlock()
	waitFor("after the firewall came up", 2)
	if p := last(); !p.Firewall || p.ClientVersion != "v9" {
		t.Fatalf("report after the change = %+v", p)
	}
	r.setNetworks([]model.PostureNetwork{{Name: "home", Prefix: "192.0.2.0/24"}})
	waitFor("after new networks", 3)
	if p := last(); p.Network != "home" {
		t.Fatalf("report after new networks = %+v, want network home", p)
	}
	r.setNetworks([]model.PostureNetwork{{Name: "home", Prefix: "192.0.2.0/24"}}) // the same: nothing to do
	if p, err := r.reportNow(context.Background()); err != nil || p.Network != "home" {
		t.Fatalf("reportNow = %+v, %v", p, err)
	}
	if n := count(); n != 4 {
		t.Fatalf("%d reports after reportNow, want 4", n)
	}
	stop()
	if n := count(); n != 4 {
		t.Fatalf("%d reports after stop, want 4", n)
	}
}
