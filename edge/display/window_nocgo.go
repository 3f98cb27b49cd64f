//go:build !cgo

package display

import (
	"context"
	"errors"
	"fmt"
)

const available = false

// ErrNeedsCgo is returned by Run in a build without cgo.
var ErrNeedsCgo = errors.New("this build has no window (built without cgo): use --listen " +
	"for the page")

// Run reports that this build cannot open a window.
func (w *Window) Run(ctx context.Context) error {
	return fmt.Errorf("window: %w", ErrNeedsCgo)
}
