package limiter

// waiter is a request waiting in a lane.
type waiter struct {
	req   Request
	ready chan *Permit
}

// lane holds the waiting requests of one lane: a FIFO per user, and the
// users with waiting requests in round-robin order.
type lane struct {
	users map[string]*userQueue
	ring  []*userQueue // users with waiters; next is served first
	next  int
	count int
}

type userQueue struct {
	user  string
	items []*waiter
}

func (q *lane) push(w *waiter) {
	u := q.users[w.req.User]
	if u == nil {
		u = &userQueue{user: w.req.User}
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

// peek returns the request that is served next in this lane, or nil.
func (q *lane) peek() *waiter {
	if q.count == 0 {
		return nil
	}
	return q.ring[q.next].items[0]
}

// pop removes w, which peek returned, and moves to the next user.
func (q *lane) pop(w *waiter) {
	u := q.ring[q.next]
	u.items[0] = nil
	u.items = u.items[1:]
	q.count--
	if len(u.items) == 0 {
		q.drop(q.next)
		return
	}
	q.next = (q.next + 1) % len(q.ring)
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
