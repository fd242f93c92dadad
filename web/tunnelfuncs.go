package web

import (
	"strconv"
	"time"
)

func init() {
	// age says how long ago t was, to a tenth of a second under a minute
	// (a heartbeat's age); "—" for nil.
	funcs["age"] = func(t *time.Time) string {
		if t == nil || t.IsZero() {
			return "—"
		}
		d := time.Since(*t)
		switch {
		case d < 0:
			return "now"
		case d < time.Minute:
			return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + " s ago"
		case d < time.Hour:
			return d.Truncate(time.Second).String() + " ago"
		}
		return d.Truncate(time.Minute).String() + " ago"
	}
	funcs["online"] = online
	// sinceMillis is how many milliseconds ago t was, to sort by; a large
	// number for nil.
	funcs["sinceMillis"] = func(t *time.Time) int64 {
		if t == nil || t.IsZero() {
			return 1 << 53
		}
		return time.Since(*t).Milliseconds()
	}
}
