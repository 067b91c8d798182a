// Command resetq resets Amazon Cognito users' passwords in bulk from an SQS
// queue of jobs. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second signal now kills the process at once
	}()
	os.Exit(Run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}
