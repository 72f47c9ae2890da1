package identity

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"mailroom.dev/platform/apierror"
	"mailroom.dev/platform/resname"
)

// DeleteUser deletes a user and all of its data: first in every other
// service (the Purgers, in parallel), then in auth (credentials, API keys,
// the user), and returns the counts by "<service>.<kind>". If a service
// fails, nothing of auth's is deleted, so that the user (whose keys still
// work) or an admin can call it again to finish: every step is idempotent.
func (s *Service) DeleteUser(ctx context.Context, userID string) (map[string]int64, error) {
	name := resname.User(userID)
	if _, err := s.GetUser(ctx, userID); err != nil {
		return nil, err
	}
	if s.revoker != nil {
		// The deletion marker comes first: from now on the user's tokens
		// are refused everywhere, and a sync still running or an event
		// still in flight writes nothing of the user. If it cannot be
		// recorded, nothing is deleted.
		if err := s.revoker.RevokeUser(ctx, userID, s.clock()); err != nil {
			return nil, apierror.Unavailablef(err, "%s could not be deleted now; retry", name)
		}
	}
	type result struct {
		counts map[string]int64
		err    error
	}
	results := make([]result, len(s.purgers))
	var wg sync.WaitGroup
	for i, p := range s.purgers {
		wg.Go(func() {
			counts, err := p.Purge(ctx, userID)
			results[i] = result{counts, err}
		})
	}
	wg.Wait()

	counts := map[string]int64{}
	var failed []string
	for i, p := range s.purgers {
		r := results[i]
		if r.err != nil {
			s.logger.WarnContext(ctx, "delete user: a service did not delete the user's data", "user", name, "service", p.Service, "error", r.err.Error())
			failed = append(failed, fmt.Sprintf("%s (%s)", p.Service, r.err))
			continue
		}
		for kind, n := range r.counts {
			counts[p.Service+"."+kind] += n
		}
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return nil, apierror.Unavailablef(nil, "%s is not deleted: %s did not delete its data; nothing was deleted in auth, and deleting the user again finishes the job",
			name, strings.Join(failed, ", ")).WithReason("DELETE_INCOMPLETE")
	}
	d, err := s.repo.DeleteUserData(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("delete user data: %w", err)
	}
	counts["auth.credentials"] = d.Credentials
	counts["auth.api_keys"] = d.APIKeys
	counts["auth.users"] = d.Users
	s.logger.InfoContext(ctx, "user deleted", "user", name, "deleted", fmt.Sprint(counts))
	return counts, nil
}
