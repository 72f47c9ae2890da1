package limiter

import "time"

// waiter is a request waiting in a lane.
type waiter struct {
	req   Request
	ready chan *Permit
	// since is when it started waiting.
	since time.Time
}

// lane holds the waiting requests of one lane: a FIFO per user, and the
// users with waiting requests in ring order.
//
// Users share the lane by cost, not by count (start-time fair queueing, a
// weighted round-robin): each user's virtual time is the tokens served to
// them while they have been waiting, and the user with the lowest goes
// next, ties in ring order. A user of long mails thus gets the same token
// share as a user of short ones, not the same number of requests. A user
// who starts waiting starts at the lowest virtual time of those waiting,
// so idle time earns no credit, and goes last among equals.
type lane struct {
	users map[string]*userQueue
	ring  []*userQueue // users with waiters; next is first among equals
	next  int
	count int
	// chosen is the ring index peek chose.
	chosen int
}

type userQueue struct {
	user  string
	items []*waiter
	vtime float64
}

// cost is what serving w adds to its user's virtual time.
func cost(w *waiter) float64 { return float64(max(1, w.req.Tokens)) }

func (q *lane) push(w *waiter) {
	u := q.users[w.req.User]
	if u == nil {
		u = &userQueue{user: w.req.User, vtime: q.minVTime()}
		q.users[w.req.User] = u
		// A user who starts waiting goes last in this round.
		q.ring = append(q.ring, nil)
		copy(q.ring[q.next+1:], q.ring[q.next:])
		q.ring[q.next] = u
		if len(q.ring) > 1 {
			q.next++
		}
	}
	if w.req.Retry {
		u.items = append([]*waiter{w}, u.items...)
	} else {
		u.items = append(u.items, w)
	}
	q.count++
}

// minVTime is the lowest virtual time of the users waiting (0: none).
func (q *lane) minVTime() float64 {
	if len(q.ring) == 0 {
		return 0
	}
	m := q.ring[0].vtime
	for _, u := range q.ring[1:] {
		m = min(m, u.vtime)
	}
	return m
}

// peek returns the request that is served next in this lane, or nil: the
// oldest of the user with the lowest virtual time, ties in ring order from
// next.
func (q *lane) peek() *waiter {
	if q.count == 0 {
		return nil
	}
	n := len(q.ring)
	best := q.next
	for i := 1; i < n; i++ {
		j := (q.next + i) % n
		if q.ring[j].vtime < q.ring[best].vtime {
			best = j
		}
	}
	q.chosen = best
	return q.ring[best].items[0]
}

// pop removes w, which peek returned, charges its cost to its user and
// moves past that user.
func (q *lane) pop(w *waiter) {
	i := q.chosen
	u := q.ring[i]
	u.items[0] = nil
	u.items = u.items[1:]
	u.vtime += cost(w)
	q.count--
	if len(u.items) == 0 {
		q.next = i
		q.drop(i)
		return
	}
	q.next = (i + 1) % len(q.ring)
}

// remove takes w out wherever it waits; false when it is not waiting.
func (q *lane) remove(w *waiter) bool {
	u := q.users[w.req.User]
	if u == nil {
		return false
	}
	for i, x := range u.items {
		if x == w {
			u.items = append(u.items[:i], u.items[i+1:]...)
			q.count--
			if len(u.items) == 0 {
				for j, r := range q.ring {
					if r == u {
						q.drop(j)
						break
					}
				}
			}
			return true
		}
	}
	return false
}

// drop removes the user at ring position i, whose queue is empty.
func (q *lane) drop(i int) {
	delete(q.users, q.ring[i].user)
	q.ring = append(q.ring[:i], q.ring[i+1:]...)
	if i < q.next {
		q.next--
	}
	if q.next >= len(q.ring) {
		q.next = 0
	}
}

// oldest returns when the longest-waiting request of the lane started
// waiting; zero when none waits. A retry jumps its user's queue, so every
// request is looked at, not only the heads.
func (q *lane) oldest() time.Time {
	var t time.Time
	for _, u := range q.ring {
		for _, w := range u.items {
			if t.IsZero() || w.since.Before(t) {
				t = w.since
			}
		}
	}
	return t
}
