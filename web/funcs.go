package web

import (
	"html/template"
	"strings"
	"time"
)

// funcs are the helpers every template may call.
var funcs = template.FuncMap{
	// ago says how long ago t was, coarsely ("3m ago"); "never" for zero.
	"ago": func(t any) string {
		var at time.Time
		switch t := t.(type) {
		case time.Time:
			at = t
		case *time.Time:
			if t != nil {
				at = *t
			}
		}
		if at.IsZero() {
			return "never"
		}
		d := time.Since(at)
		switch {
		case d < time.Minute:
			return "just now"
		case d < time.Hour:
			return d.Truncate(time.Minute).String() + " ago"
		case d < 48*time.Hour:
			return d.Truncate(time.Hour).String() + " ago"
		}
		return at.UTC().Format("2006-01-02")
	},
	// rfc3339 formats t for a datetime attribute.
	"rfc3339": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	// join joins strings with sep.
	"join": strings.Join,
	// bytes formats a byte count for people (1.2 MB).
	"bytes": func(n uint64) string {
		units := []string{"B", "kB", "MB", "GB", "TB"}
		f, i := float64(n), 0
		for f >= 1000 && i < len(units)-1 {
			f /= 1000
			i++
		}
		if i == 0 {
			return formatInt(n) + " B"
		}
		return formatFloat(f) + " " + units[i]
	},
}
