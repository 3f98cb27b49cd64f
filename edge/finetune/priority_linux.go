package finetune

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"unsafe"
)

// LowerPriority gives every thread of this process the nice value n (0 to
// 19; higher yields more), so that live detection in another process keeps
// the CPU while a fine-tune runs; at 19 the threads also go into Linux's
// idle scheduling class (SCHED_IDLE), which runs them only on CPU time
// nothing else wants. Threads started later inherit both from the thread
// that starts them. Linux keeps them per thread, which is why each is set.
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
		if n == 19 {
			var param [1]int32 // sched_param: priority 0
			_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETSCHEDULER, uintptr(tid),
				schedIdle, uintptr(unsafe.Pointer(&param[0])))
			if errno != 0 {
				return fmt.Errorf("idle scheduling: thread %d: %w", tid, errno)
			}
		}
	}
	return nil
}

// schedIdle is Linux's SCHED_IDLE policy.
const schedIdle = 5
