//go:build !linux

package finetune

import "errors"

// LowerPriority is supported on Linux only; elsewhere it returns an error
// and the fine-tune runs at the usual priority.
func LowerPriority(n int) error {
	return errors.New("nice: lowering a process's priority is supported on Linux only")
}
