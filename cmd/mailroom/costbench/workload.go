package main

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
)

// Mail is one mail of the workload. Its date is Age minutes before the run
// (the workload does not depend on the calendar).
type Mail struct {
	User    string `json:"user"`
	ID      string `json:"id"`
	Kind    string `json:"kind"`
	From    string `json:"from"`
	Subject string `json:"subject"`
	ListID  string `json:"list_id,omitempty"`
	Body    string `json:"body"`
	Age     int    `json:"age_minutes"`
}

// Seed is the workload's fixed seed.
const Seed = 20261203

type sender struct {
	kind, from, list string
	subjects, bodies []string
	weight           int
}

var (
	shops     = []string{"Larder", "Northwind", "Pinecone", "Cobalt", "Saltmarsh", "Fernhill", "Quayside", "Umber"}
	services  = []string{"Trellis", "Hubbub", "Ledgerly", "Castor", "Beacon", "Orbit", "Plume"}
	firsts    = []string{"Grace", "Alan", "Edsger", "Barbara", "Ken", "Frances", "Donald", "Margaret", "Dennis", "Radia", "John", "Sophie", "Niklaus", "Adele", "Tony", "Jean", "Ada", "Hedy"}
	lasts     = []string{"Hopper", "Turing", "Dijkstra", "Liskov", "Thompson", "Allen", "Knuth", "Hamilton", "Ritchie", "Perlman", "Backus", "Wilson", "Wirth", "Goldberg", "Hoare", "Sammet"}
	topics    = []string{"Go generics", "distributed systems", "databases", "compilers", "security engineering", "typography", "gardening", "cycling"}
	projects  = []string{"Atlas", "Beacon", "Cinder", "Delta", "Ember", "Falcon"}
	sentences = []string{
		"I hope this finds you well; it has been a busy few weeks here.",
		"The kids loved the museum, and we stayed much longer than planned.",
		"I went through the numbers again and something does not add up.",
		"It rained all day, so we read by the window and drank far too much tea.",
		"Thank you again for the book; I finished it on the train.",
		"The garden is finally green again after the long winter.",
		"Did you ever hear back from the landlord about the boiler?",
		"I found the old photos in a box in the attic, you would laugh.",
	}
)

// senders returns the senders of one user, drawn from r: lists,
// receipts, notifications, colleagues, shops' offers, account notices
// and airlines. Each sender's mail is of one kind, as real senders' is.
func senders(r *rand.Rand, user string) []sender {
	var out []sender
	pick := func(xs []string) string { return xs[r.IntN(len(xs))] }
	for i, t := range r.Perm(len(topics))[:5] {
		name := topics[t]
		host := strings.ReplaceAll(strings.ToLower(name), " ", "") + ".example"
		out = append(out, sender{kind: "newsletter", from: fmt.Sprintf("%q <news@%s>", name+" Weekly", host), list: "weekly." + host,
			subjects: []string{name + " Weekly #%d", name + " Weekly #%d: this week's picks"},
			bodies:   []string{"This week in " + name + ": three articles, one talk and a tool. Read the newsletter online. To stop receiving it, unsubscribe here."},
			weight:   22 - 3*i})
	}
	for i, s := range r.Perm(len(shops))[:4] {
		shop := shops[s]
		host := strings.ToLower(shop) + ".example"
		out = append(out, sender{kind: "receipt", from: fmt.Sprintf("%q <receipts@%s>", shop, host),
			subjects: []string{"Your receipt from " + shop + " #%d", shop + " receipt %d"},
			bodies:   []string{"Thank you for your payment to " + shop + ". Your receipt total is %d.50 EUR, paid by card."},
			weight:   22 - 3*i})
		out = append(out, sender{kind: "offer", from: fmt.Sprintf("%q <offers@%s>", shop, host),
			subjects: []string{shop + ": %d%% off this weekend", "Special offer %d from " + shop},
			bodies:   []string{"A special offer for you: take %d% off everything. Limited time, discount applied at the till."},
			weight:   12 - 2*i})
	}
	for i, s := range r.Perm(len(services))[:3] {
		svc := services[s]
		host := strings.ToLower(svc) + ".example"
		out = append(out, sender{kind: "notification", from: fmt.Sprintf("%q <notify@%s>", svc, host),
			subjects: []string{svc + " notification %d", "New " + svc + " notification (%d)"},
			bodies:   []string{"This is a notification from " + svc + ": item %d changed state. This is an automated message."},
			weight:   20 - 4*i})
		out = append(out, sender{kind: "account", from: fmt.Sprintf("%q <no-reply@accounts.%s>", svc, host),
			subjects: []string{"New sign-in to your " + svc + " account (%d)"},
			bodies:   []string{"We noticed a new sign-in to your account from a new device (%d). If this was you, no action is needed."},
			weight:   4})
	}
	for i := range 6 {
		f, l := firsts[r.IntN(len(firsts))], lasts[r.IntN(len(lasts))]
		p := pick(projects)
		out = append(out, sender{kind: "work", from: fmt.Sprintf("%s %s <%s.%s@corp-%s.example>", f, l, strings.ToLower(f), strings.ToLower(l), user),
			subjects: []string{"Re: project " + p + " — step %d", "Project " + p + " meeting notes %d", "Re: Re: " + p + " agenda %d"},
			bodies:   []string{"Here are my notes for the project meeting (%d). Can we go through the agenda before the standup?"},
			weight:   24 - 3*i})
	}
	out = append(out, sender{kind: "travel", from: `"Skyline Air" <bookings@skylineair.example>`,
		subjects: []string{"Your flight itinerary %d", "Boarding pass for flight SK%d"},
		bodies:   []string{"Your flight itinerary: flight SK%d departs at 07:40. Boarding pass attached."},
		weight:   6})
	return out
}

// Generate returns the workload: for each of users, perUser mails, oldest
// first, of which a few are distinct personal mails and a few exact
// resends.
func Generate(users, perUser int) []Mail {
	var all []Mail
	for u := range users {
		user := fmt.Sprintf("user-%02d", u+1)
		r := rand.New(rand.NewPCG(Seed, uint64(u)))
		ss := senders(r, user)
		total := 0
		for _, s := range ss {
			total += s.weight
		}
		var mails []Mail
		personal := perUser * 8 / 100
		resends := perUser * 3 / 100
		for i := 0; len(mails) < perUser-personal-resends; i++ {
			x := r.IntN(total)
			var s sender
			for _, c := range ss {
				if x < c.weight {
					s = c
					break
				}
				x -= c.weight
			}
			n := 100 + r.IntN(900)
			subject := strings.Replace(s.subjects[r.IntN(len(s.subjects))], "%d", fmt.Sprint(n), 1)
			body := strings.Replace(s.bodies[r.IntN(len(s.bodies))], "%d", fmt.Sprint(n), 1)
			mails = append(mails, Mail{User: user, Kind: s.kind, From: s.from, Subject: subject, ListID: s.list, Body: body})
		}
		for i := range personal {
			f, l := firsts[r.IntN(len(firsts))], lasts[r.IntN(len(lasts))]
			mails = append(mails, Mail{User: user, Kind: "personal",
				From:    fmt.Sprintf("%s %s <%s%d@mail-%d.example>", f, l, strings.ToLower(f), i, r.IntN(1000)),
				Subject: fmt.Sprintf("%s, %s", []string{"Catching up", "Long time", "Hello from the coast", "A small favour", "News"}[r.IntN(5)], f),
				Body:    sentences[r.IntN(len(sentences))] + " " + sentences[r.IntN(len(sentences))]})
		}
		for range resends {
			m := mails[r.IntN(len(mails))]
			m.Kind += "-resend"
			mails = append(mails, m)
		}
		r.Shuffle(len(mails), func(i, j int) { mails[i], mails[j] = mails[j], mails[i] })
		for i := range mails {
			mails[i].ID = fmt.Sprintf("%s-%04d", user, i)
			mails[i].Age = (len(mails) - i) * 90 // oldest first, 1.5 h apart
		}
		all = append(all, mails...)
	}
	return all
}

func writeWorkload(path string, mails []Mail) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	enc := json.NewEncoder(zw)
	for _, m := range mails {
		if err := enc.Encode(m); err != nil {
			return err
		}
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func readWorkload(path string) ([]Mail, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	var out []Mail
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var m Mail
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// kinds counts the workload's mail by kind, for the report.
func kinds(mails []Mail) string {
	n := map[string]int{}
	for _, m := range mails {
		kind, _, _ := strings.Cut(m.Kind, "-resend")
		n[kind]++
	}
	var ks []string
	for k := range n {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, n[k]))
	}
	return strings.Join(parts, ", ")
}
