package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

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

// AddSplitEntry adds a prefix to the split tunnel list of the current mode.
func (r *Registry) AddSplitEntry(ctx context.Context, e model.SplitEntry) (model.SplitTunnel, error) {
	if err := model.ValidatePrefix(e.Address); err != nil {
		return model.SplitTunnel{}, err
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
		if slices.ContainsFunc(st.Entries, func(o model.SplitEntry) bool { return o.Address == e.Address }) {
			return model.Errorf(model.KindConflict, "%s is already in the %s list", e.Address, st.Mode)
		}
		if len(st.Entries) >= maxSplitEntries {
			return model.Errorf(model.KindConflict, "the split tunnel list is full (%d entries)", maxSplitEntries)
		}
		st.Entries = append(st.Entries, e)
		return putSplitTunnel(tx, st)
	})
	return st, err
}

// RemoveSplitEntry removes a prefix from the split tunnel list.
func (r *Registry) RemoveSplitEntry(ctx context.Context, addr string) (model.SplitTunnel, error) {
	p, err := model.ParsePrefix(addr)
	if err != nil {
		return model.SplitTunnel{}, err
	}
	var st model.SplitTunnel
	_, err = r.st.Update(ctx, func(tx store.Tx) error {
		var err error
		if st, err = splitTunnel(tx); err != nil {
			return err
		}
		i := slices.IndexFunc(st.Entries, func(o model.SplitEntry) bool { return o.Address == p })
		if i < 0 {
			return model.Errorf(model.KindNotFound, "%s is not in the %s list", p, st.Mode)
		}
		st.Entries = slices.Delete(st.Entries, i, i+1)
		return putSplitTunnel(tx, st)
	})
	return st, err
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
