package model

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseCondition(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Expr
	}{
		{"dst_ip is 192.0.2.7", Expr{Selector: SelDstIP, Operator: OpIs, Values: []string{"192.0.2.7"}}},
		{"dst_port in 22, 8000-8080", Expr{Selector: SelDstPort, Operator: OpIn, Values: []string{"22", "8000-8080"}}},
		{"tunnel is not site-c", Expr{Selector: SelTunnel, Operator: OpIsNot, Values: []string{"site-c"}}},
		{"src_ip not in 198.51.100.0/24", Expr{Selector: SelSrcIP, Operator: OpNotIn, Values: []string{"198.51.100.0/24"}}},
		{"user_email matches .*@example.com", Expr{Selector: SelUserEmail, Operator: OpMatches, Values: []string{".*@example.com"}}},
	} {
		got, err := ParseCondition(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCondition(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"dst_ip", "dst_ip is", "dst_ip is not", "color is red", "dst_port is 65536"} {
		if _, err := ParseCondition(bad); err == nil {
			t.Errorf("ParseCondition(%q) succeeded", bad)
		}
	}
}

func TestExprString(t *testing.T) {
	e := Expr{And: []Expr{
		{Selector: SelDstIP, Operator: OpIs, Values: []string{"192.0.2.7"}},
		{Or: []Expr{{Selector: SelDstPort, Operator: OpIn, Values: []string{"22", "80"}}, {Selector: SelProtocol, Operator: OpIs, Values: []string{"icmp"}}}},
	}}
	if got, want := e.String(), "dst_ip is 192.0.2.7 and (dst_port in 22,80 or protocol is icmp)"; got != want {
		t.Fatalf("String = %q, want %q", got, want)
	}
}

func TestParseIdentityCondition(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Expr
	}{
		{"user.email is alice@example.com", Expr{Selector: SelUser, Operator: OpIs, Values: []string{"alice@example.com"}}},
		{"user_email is alice@example.com", Expr{Selector: SelUserEmail, Operator: OpIs, Values: []string{"alice@example.com"}}},
		{"user.group in eng, ops", Expr{Selector: SelUserGroup, Operator: OpIn, Values: []string{"eng", "ops"}}},
		{"user.group matches eng-.*", Expr{Selector: SelUserGroup, Operator: OpMatches, Values: []string{"eng-.*"}}},
		{"device.posture.os_version >= 6.1", Expr{Selector: SelPostureOSVersion, Operator: OpGe, Values: []string{"6.1"}}},
		{"device.posture.kernel < 6", Expr{Selector: SelPostureKernel, Operator: OpLt, Values: []string{"6"}}},
		{"device.posture.client_version > v0.18.2", Expr{Selector: SelPostureClient, Operator: OpGt, Values: []string{"v0.18.2"}}},
		{"device.posture.kernel <= 6.1.0", Expr{Selector: SelPostureKernel, Operator: OpLe, Values: []string{"6.1.0"}}},
		{"device.posture.os_version is 24.04", Expr{Selector: SelPostureOSVersion, Operator: OpIs, Values: []string{"24.04"}}},
		{"device.posture.disk_encrypted is true", Expr{Selector: SelPostureDiskEncrypted, Operator: OpIs, Values: []string{"true"}}},
		{"device.posture.firewall is not false", Expr{Selector: SelPostureFirewall, Operator: OpIsNot, Values: []string{"false"}}},
		{"device.posture.os is linux", Expr{Selector: SelPostureOS, Operator: OpIs, Values: []string{"linux"}}},
		{"device.posture.serial not in SN-1 SN-2", Expr{Selector: SelPostureSerial, Operator: OpNotIn, Values: []string{"SN-1", "SN-2"}}},
		{"device.posture.network is office", Expr{Selector: SelPostureNetwork, Operator: OpIs, Values: []string{"office"}}},
	} {
		got, err := ParseCondition(tc.in)
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseCondition(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestValidateIdentityCondition(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want: a part of the error
	}{
		{"device.posture.os >= 6", "device.posture.os does not take >=: only device.posture.os_version, device.posture.kernel, device.posture.client_version compare"},
		{"dst_port > 1024", "dst_port does not take >"},
		{"device.posture.kernel >= 6.1.0-18", `device.posture.kernel >= "6.1.0-18": not a version`},
		{"device.posture.kernel >= latest", "not a version"},
		{"device.posture.os_version >= 6.1,7", "not a version"},
		{"device.posture.disk_encrypted is yes", `device.posture.disk_encrypted "yes" is neither true nor false`},
		{"device.posture.disk_encrypted in true,false", "device.posture.disk_encrypted takes is or is_not with true or false, not in"},
		{"device.posture.firewall matches t.*", "takes is or is_not"},
		{"device.posture.disk_encryption is true", `unknown selector "device.posture.disk_encryption" (want one of dst_ip, src_ip, dst_port, protocol, vnet, user.email, user.group, device_id, tunnel, device.posture.os,`},
		{"user.group matches (eng", "invalid regular expression"},
		{"user.groups is eng", `unknown selector "user.groups"`},
	} {
		_, err := ParseCondition(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseCondition(%q) = %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}
