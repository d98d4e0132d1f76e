module platform.local/deploy/httpprobe

go 1.22
