//go:build unix

package reload

import (
	"os"
	"syscall"
)

// inode tells a file replaced by rename from the same file rewritten.
func inode(st os.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(s.Ino)
	}
	return 0
}
