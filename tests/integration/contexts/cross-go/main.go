// hello says which platform it was compiled for: GOOS/GOARCH, and /vN from the GOARM the build recorded.
package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

func main() {
	platform := runtime.GOOS + "/" + runtime.GOARCH
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, setting := range info.Settings {
			if setting.Key == "GOARM" {
				platform += "/v" + setting.Value
			}
		}
	}
	fmt.Println("hello from", platform)
}
