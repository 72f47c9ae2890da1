package chaos_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"mailroom.dev/fakes/fakeopenai"
)

// BenchmarkCluster is issue 12's "scale out, measured" (make
// bench-cluster): one backfill against the fake OpenAI at limits one
// classifier replica cannot use up on its own share of the CPU, on
// `mailroom cluster` with 1 and then 2 replicas of every service (each
// run with a cluster, a Postgres and a fake of its own). It reports
// mails/s and the completion time ÷ the floor the rate limit sets
// (mails ÷ RPM/60). Run it with -benchtime 1x: one run is minutes.
func BenchmarkCluster(b *testing.B) {
	users, mails := envInt("MAILROOM_BENCH_USERS", 20), envInt("MAILROOM_BENCH_MAILS", 200)
	rpm := envInt("MAILROOM_BENCH_RPM", 30_000)
	for _, replicas := range []int{1, 2} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			h := startHarness(b, replicas, newModel(fakeopenai.Limits{RPM: rpm, TPM: 100 * rpm * 1000}, time.Second))
			for i := range b.N {
				scenario := fmt.Sprintf("bench%dr%d", i, replicas)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
				start, cpu0 := time.Now(), h.cpuSeconds()
				bf := h.startBackfill(ctx, scenario, users, mails)
				total := users*mails + 1 // and the poison mail
				for {
					c, err := h.counts(ctx, scenario)
					if err == nil && c.classified+c.failed >= total {
						break
					}
					if ctx.Err() != nil {
						b.Fatalf("not classified within 30 minutes: %+v", c)
					}
					time.Sleep(200 * time.Millisecond)
				}
				elapsed, cpu := time.Since(start), h.cpuSeconds()-cpu0
				<-bf.done
				cancel()
				floor := time.Duration(float64(users*mails) / (float64(rpm) / 60) * float64(time.Second))
				st := h.model.fake.Stats().Keys["sk-chaos"]
				b.ReportMetric(float64(users*mails)/elapsed.Seconds(), "mails/s")
				b.ReportMetric(elapsed.Seconds()/floor.Seconds(), "x-floor")
				b.ReportMetric(float64(st.RateLimited), "429s")
				// CPU the cluster's processes used per second of the run
				// (restarted processes' earlier CPU aside): near the
				// machine's share of cores, the machine is the limit.
				b.ReportMetric(cpu/elapsed.Seconds(), "cluster-cpu-s/s")
				fmt.Fprintf(os.Stdout, "replicas=%d: %d mails in %s (%.1f mails/s), floor %s at %d RPM: %.2f× the floor; %d requests answered 429; the cluster used %.2f CPU-seconds a second (%d cores, load average %s)\n",
					replicas, users*mails, elapsed.Round(100*time.Millisecond), float64(users*mails)/elapsed.Seconds(), floor, rpm, elapsed.Seconds()/floor.Seconds(), st.RateLimited,
					cpu/elapsed.Seconds(), runtime.NumCPU(), loadAverage())
			}
		})
	}
}

// cpuSeconds adds up the user and system CPU time of every process that
// cluster.json lists now.
func (h *harness) cpuSeconds() float64 {
	st := h.state()
	var pids []int
	for _, p := range st.Processes {
		pids = append(pids, p.PID)
	}
	for _, n := range st.NATS {
		pids = append(pids, n.PID)
	}
	total := 0.0
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		// utime and stime are fields 14 and 15 of stat(5), 12 and 13 after
		// the state; in clock ticks (100 a second on Linux).
		if len(fields) > 12 {
			u, _ := strconv.ParseFloat(fields[11], 64)
			k, _ := strconv.ParseFloat(fields[12], 64)
			total += (u + k) / 100
		}
	}
	return total
}

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}
