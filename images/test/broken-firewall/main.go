// Stands in for a firewall tool on a node whose kernel lacks its backend (test images only, see
// docs/images.md): installed in place of xtables-legacy-multi (a kernel without ip_tables) or of
// nft and xtables-nft-multi (a kernel without nf_tables). It answers --version as the real tool
// does, since that needs no kernel, and fails everything else with the kernel's own error.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	name := filepath.Base(os.Args[0])
	program := "iptables"
	if strings.HasPrefix(name, "ip6tables") {
		program = "ip6tables"
	}
	version := len(os.Args) > 1 && (os.Args[1] == "--version" || os.Args[1] == "-V")
	switch {
	case strings.Contains(name, "legacy"):
		if version {
			fmt.Printf("%s v1.8.9 (legacy)\n", program)
			return
		}
		fmt.Fprintf(os.Stderr, "%s v1.8.9 (legacy): can't initialize %s table `nat': Table does not exist (do you need to insmod?)\nPerhaps %s or your kernel needs to be upgraded.\n", program, program, program)
		os.Exit(3)
	case name == "nft":
		if version {
			fmt.Println("nftables v1.0.6 (Lester Gooch #5)")
			return
		}
		fmt.Fprintln(os.Stderr, "netlink.c:62: Unable to initialize Netlink socket: Protocol not supported")
		os.Exit(3)
	default:
		if version {
			fmt.Printf("%s v1.8.9 (nf_tables)\n", program)
			return
		}
		fmt.Fprintf(os.Stderr, "%s/1.8.9 Failed to initialize nft: Protocol not supported\n", program)
		os.Exit(1)
	}
}
