// Command http-probe is the health-check client of the distroless images, which have
// no shell, curl or wget: it GETs one URL and exits 0 on a 2xx answer, 1 otherwise.
//
//	http-probe http://127.0.0.1:9100/readyz
//
// Standard library only, so building it needs no module download.
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: http-probe URL")
		os.Exit(2)
	}
	url := os.Args[1]
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		fmt.Fprintf(os.Stderr, "http-probe: %v\n", err)
		os.Exit(1)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fmt.Fprintf(os.Stderr, "http-probe: %s answered %s\n", url, resp.Status)
		os.Exit(1)
	}
}
