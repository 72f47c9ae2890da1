package chaos_test

import (
	"context"
	"fmt"
	"os"
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
				start := time.Now()
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
				elapsed := time.Since(start)
				<-bf.done
				cancel()
				floor := time.Duration(float64(users*mails) / (float64(rpm) / 60) * float64(time.Second))
				st := h.model.fake.Stats().Keys["sk-chaos"]
				b.ReportMetric(float64(users*mails)/elapsed.Seconds(), "mails/s")
				b.ReportMetric(elapsed.Seconds()/floor.Seconds(), "x-floor")
				b.ReportMetric(float64(st.RateLimited), "429s")
				fmt.Fprintf(os.Stdout, "replicas=%d: %d mails in %s (%.1f mails/s), floor %s at %d RPM: %.2f× the floor; %d requests answered 429\n",
					replicas, users*mails, elapsed.Round(100*time.Millisecond), float64(users*mails)/elapsed.Seconds(), floor, rpm, elapsed.Seconds()/floor.Seconds(), st.RateLimited)
			}
		})
	}
}
