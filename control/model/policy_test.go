package model

import (
	"reflect"
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
