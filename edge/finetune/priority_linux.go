package finetune

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// LowerPriority gives every thread of this process the nice value n (0 to
// 19; higher yields more), so that live detection in another process keeps
// the CPU while a fine-tune runs. Threads started later inherit it from
// the thread that starts them. Linux keeps a nice value per thread, which
// is why each is set.
func LowerPriority(n int) error {
	if n < 0 || n > 19 {
		return fmt.Errorf("nice %d: give 0 to 19", n)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("nice: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err != nil {
			return fmt.Errorf("nice %d: thread %d: %w", n, tid, err)
		}
	}
	return nil
}
