package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/switchyard/switchyard/control/model"
	"github.com/switchyard/switchyard/control/store"
)

// maxSplitEntries bounds the split tunnel list.
const maxSplitEntries = 1000

// SplitTunnel returns the split tunnel setting (Exclude mode with the default
// list until someone changes it).
func (r *Registry) SplitTunnel(ctx context.Context) (model.SplitTunnel, error) {
	var st model.SplitTunnel
	err := r.st.View(ctx, func(tx store.Tx) error {
		var err error
		st, err = splitTunnel(tx)
		return err
	})
	return st, err
}

// SetSplitMode switches the split tunnel mode; the list is reset to that
// mode's defaults (the default excludes, or empty for Include).
func (r *Registry) SetSplitMode(ctx context.Context, mode string) (model.SplitTunnel, error) {
	st := model.SplitTunnel{Mode: mode, Entries: []model.SplitEntry{}}
	switch mode {
	case model.SplitExclude:
		st.Entries = model.DefaultExcludes()
	case model.SplitInclude:
	default:
		return st, model.Errorf(model.KindInvalid, "split tunnel mode %q is neither %q nor %q", mode, model.SplitExclude, model.SplitInclude)
	}
	_, err := r.st.Update(ctx, func(tx store.Tx) error { return putSplitTunnel(tx, st) })
	return st, err
}

// AddSplitEntry adds a prefix or a domain (exactly one) to the split
// tunnel list of the current mode.
func (r *Registry) AddSplitEntry(ctx context.Context, e model.SplitEntry) (model.SplitTunnel, error) {
	switch {
	case e.Domain != "" && e.Address.IsValid():
		return model.SplitTunnel{}, model.Errorf(model.KindInvalid, "split tunnel entry has both an address (%s) and a domain (%s): give one", e.Address, e.Domain)
	case e.Domain != "":
		d, err := model.ParseSplitDomain(e.Domain)
		if err != nil {
			return model.SplitTunnel{}, err
		}
		e.Domain = d
	default:
		if err := model.ValidatePrefix(e.Address); err != nil {
			return model.SplitTunnel{}, err
		}
	}
	if err := model.ValidateComment(e.Description); err != nil {
		return model.SplitTunnel{}, err
	}
	var st model.SplitTunnel
	_, err := r.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if st, err = splitTunnel(tx); err != nil {
			return err
		}
		if slices.ContainsFunc(st.Entries, func(o model.SplitEntry) bool { return o.Key() == e.Key() }) {
			return model.Errorf(model.KindConflict, "%s is already in the %s list", e.Key(), st.Mode)
		}
		if len(st.Entries) >= maxSplitEntries {
			return model.Errorf(model.KindConflict, "the split tunnel list is full (%d entries)", maxSplitEntries)
		}
		st.Entries = append(st.Entries, e)
		return putSplitTunnel(tx, st)
	})
	return st, err
}

// RemoveSplitEntry removes a prefix or a domain from the split tunnel list.
func (r *Registry) RemoveSplitEntry(ctx context.Context, addr string) (model.SplitTunnel, error) {
	key, err := splitKey(addr)
	if err != nil {
		return model.SplitTunnel{}, err
	}
	var st model.SplitTunnel
	_, err = r.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if st, err = splitTunnel(tx); err != nil {
			return err
		}
		i := slices.IndexFunc(st.Entries, func(o model.SplitEntry) bool { return o.Key() == key })
		if i < 0 {
			return model.Errorf(model.KindNotFound, "%s is not in the %s list", key, st.Mode)
		}
		st.Entries = slices.Delete(st.Entries, i, i+1)
		return putSplitTunnel(tx, st)
	})
	return st, err
}

// splitKey is the Key of the entry s names: a CIDR, or else a domain.
func splitKey(s string) (string, error) {
	if strings.Contains(s, "/") || strings.Trim(s, "0123456789.:abcdefABCDEF") == "" {
		p, err := model.ParsePrefix(s)
		return p.String(), err
	}
	return model.ParseSplitDomain(s)
}

func splitTunnel(tx store.Tx) (model.SplitTunnel, error) {
	buf, err := tx.Get(collSettings, keySplitTunnel)
	if errors.Is(err, store.ErrNotFound) {
		return model.SplitTunnel{Mode: model.SplitExclude, Entries: model.DefaultExcludes()}, nil
	}
	if err != nil {
		return model.SplitTunnel{}, err
	}
	var st model.SplitTunnel
	if err := json.Unmarshal(buf, &st); err != nil {
		return st, fmt.Errorf("decode split tunnel setting: %w", err)
	}
	return st, nil
}

func putSplitTunnel(tx store.Tx, st model.SplitTunnel) error {
	buf, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode split tunnel setting: %w", err)
	}
	return tx.Put(collSettings, keySplitTunnel, buf)
}
