# Sourced by the scripts that run go: selects the Go toolchain go.mod names
# on its `toolchain` line (one with the standard library's security fixes).
# Go downloads it once from the module proxy when the local go is older.
GOTOOLCHAIN=$(sed -n 's/^toolchain //p' "$(dirname "${BASH_SOURCE[0]}")/../go.mod")
export GOTOOLCHAIN
