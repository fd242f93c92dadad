package checksum

import "testing"

func TestRFC1071Example(t *testing.T) {
	// RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to 2ddf0, folded ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Fold(Sum(b, 0)); got != 0xddf2 {
		t.Fatalf("Fold(Sum) = %#x, want 0xddf2", got)
	}
	if got := Fold(Sum([]byte{0xab}, 0)); got != 0xab00 {
		t.Fatalf("odd byte: %#x, want 0xab00", got)
	}
	// A header carrying its own checksum folds to 0xffff.
	hdr := append([]byte(nil), b...)
	c := ^Fold(Sum(hdr, 0))
	hdr = append(hdr, byte(c>>8), byte(c))
	if got := Fold(Sum(hdr, 0)); got != 0xffff {
		t.Fatalf("with its checksum: %#x, want 0xffff", got)
	}
}
