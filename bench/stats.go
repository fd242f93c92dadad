package bench

import (
	"fmt"
	"math"
	"slices"
)

// Summary is a set of repeated measurements reduced to median, min and max.
type Summary struct {
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
}

// Summarize returns the median, min and max of samples (NaNs are skipped);
// the mean of the two middle values is the median of an even count. Without
// samples all three are zero and Valid is false.
func Summarize(samples []float64) Summary {
	s := make([]float64, 0, len(samples))
	for _, v := range samples {
		if !math.IsNaN(v) {
			s = append(s, v)
		}
	}
	if len(s) == 0 {
		return Summary{Samples: []float64{}}
	}
	sorted := slices.Clone(s)
	slices.Sort(sorted)
	n := len(sorted)
	med := sorted[n/2]
	if n%2 == 0 {
		med = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return Summary{Median: med, Min: sorted[0], Max: sorted[n-1], Samples: s}
}

// Valid reports whether the summary holds at least one sample.
func (s Summary) Valid() bool { return len(s.Samples) > 0 }

// Format prints "median [min–max]" with the given number of decimals, or "—"
// for an empty summary.
func (s Summary) Format(decimals int) string {
	if !s.Valid() {
		return "—"
	}
	if len(s.Samples) == 1 {
		return fmt.Sprintf("%.*f", decimals, s.Median)
	}
	return fmt.Sprintf("%.*f [%.*f–%.*f]", decimals, s.Median, decimals, s.Min, decimals, s.Max)
}
