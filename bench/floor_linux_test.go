package bench

import (
	"runtime"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// floorSize is the packet the crypto floor is measured at: a full tunnel
// packet's inner payload, as the lab's TCP streams send them.
const floorSize = 1350

// rusageThread is RUSAGE_THREAD: the calling thread's CPU time.
const rusageThread = 1

// threadCPU returns the calling thread's user+system time.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// aeadLoop times Open or Seal of size-byte packets for about d of CPU on
// one locked thread and returns CPU seconds per GB of plaintext.
func aeadLoop(size int, d time.Duration, open bool) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	aead, err := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
	if err != nil {
		panic(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSize)
	plain := make([]byte, size)
	sealed := aead.Seal(nil, nonce, plain, nil)
	dst := make([]byte, 0, len(sealed))
	start := threadCPU()
	n := 0
	for ; threadCPU()-start < d; n += 64 {
		for range 64 {
			if open {
				if _, err := aead.Open(dst[:0], nonce, sealed, nil); err != nil {
					panic(err)
				}
			} else {
				dst = aead.Seal(dst[:0], nonce, plain, nil)
			}
		}
	}
	spent := threadCPU() - start
	return spent.Seconds() / (float64(n) * float64(size) / 1e9)
}

// measureFloor measures the crypto floor reps times, d of CPU for each of
// Open and Seal per repetition.
func measureFloor(size int, d time.Duration, reps int) *CryptoFloor {
	var open, seal, total []float64
	for range reps {
		o, s := aeadLoop(size, d, true), aeadLoop(size, d, false)
		open, seal, total = append(open, o), append(seal, s), append(total, o+s)
	}
	return &CryptoFloor{Size: size, Open: Summarize(open), Seal: Summarize(seal), Total: Summarize(total)}
}

func TestCryptoFloor(t *testing.T) {
	f := measureFloor(floorSize, 20*time.Millisecond, 3)
	if len(f.Total.Samples) != 3 || f.Size != floorSize {
		t.Fatalf("floor = %+v, want 3 samples at %d B", f, floorSize)
	}
	// Any CPU of this century does 1350 B of ChaCha20-Poly1305 at between
	// 10 MB/s and 100 GB/s: 0.01–100 s/GB each way.
	for _, s := range []Summary{f.Open, f.Seal} {
		if s.Min < 0.01 || s.Max > 100 {
			t.Errorf("floor = %s s/GB, outside 0.01–100", s.Format(3))
		}
	}
	if f.Total.Median < f.Open.Min+f.Seal.Min {
		t.Errorf("total %v below open + seal minimums %v + %v", f.Total.Median, f.Open.Min, f.Seal.Min)
	}
}

// BenchmarkCryptoFloor reports the crypto floor: ChaCha20-Poly1305 Open +
// Seal of one 1350 B packet, in s/GB.
func BenchmarkCryptoFloor(b *testing.B) {
	aead, err := chacha20poly1305.New(make([]byte, chacha20poly1305.KeySize))
	if err != nil {
		b.Fatal(err)
	}
	nonce := make([]byte, chacha20poly1305.NonceSize)
	plain := make([]byte, floorSize)
	sealed := aead.Seal(nil, nonce, plain, nil)
	dst := make([]byte, 0, len(sealed))
	b.SetBytes(floorSize)
	for b.Loop() {
		dst = aead.Seal(dst[:0], nonce, plain, nil)
		if _, err := aead.Open(dst[:0], nonce, sealed, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(b.Elapsed().Seconds()/(float64(b.N)*floorSize/1e9), "s/GB")
}
