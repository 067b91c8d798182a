package redisserver

import (
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/resetq/resetq/internal/localserver"
)

// CLI is the client executable StartCluster creates the cluster with.
const CLI = "redis-cli"

// Cluster is a Redis Cluster of primaries on 127.0.0.1, without replicas.
type Cluster struct {
	// Nodes are the primaries; each serves a third of the slots (of three).
	Nodes []*Server
	// URL is the first node's, for --redis-url with --redis-cluster.
	URL string
}

// StartCluster starts n cluster-enabled redis-servers (n >= 3), joins
// them with redis-cli --cluster create, and waits until every node says
// cluster_state:ok. args go to each server.
func StartCluster(ctx context.Context, n int, args ...string) (*Cluster, error) {
	cli, err := exec.LookPath(CLI)
	if err != nil {
		return nil, fmt.Errorf("%s not found on PATH; install it with: %s", CLI, InstallHint)
	}
	c := &Cluster{}
	for range n {
		busPort, err := localserver.FreePort()
		if err != nil {
			c.Close()
			return nil, err
		}
		s, err := Start(ctx, append([]string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(busPort), "--cluster-node-timeout", "5000"}, args...)...)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
	}
	c.URL = c.Nodes[0].URL
	create := []string{"--cluster", "create"}
	for _, s := range c.Nodes {
		create = append(create, s.Addr)
	}
	create = append(create, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, create...).CombinedOutput(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redis-cli --cluster create: %w: %s", err, out)
	}
	if err := c.waitOK(ctx, cli); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// waitOK waits until each node answers CLUSTER INFO with cluster_state:ok.
func (c *Cluster) waitOK(ctx context.Context, cli string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*readyTimeout)
	defer cancel()
	for _, s := range c.Nodes {
		host, port := "127.0.0.1", strconv.Itoa(s.port)
		for {
			out, err := exec.CommandContext(ctx, cli, "-h", host, "-p", port, "cluster", "info").Output()
			if err == nil && strings.Contains(string(out), "cluster_state:ok") {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("wait for cluster node %s: %w (last answer %q, %v)", s.Addr, ctx.Err(), out, err)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

// Close kills every node.
func (c *Cluster) Close() error {
	var first error
	for _, s := range c.Nodes {
		if err := s.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
