package classify

import (
	"fmt"
	"regexp"
	"unicode/utf8"

	"mailroom.dev/platform/apierror"
)

// The category names of the default taxonomy. Rules refer to them by these
// constants; a user's taxonomy may drop or add categories, but always keeps
// Other.
const (
	Important     = "important"
	Personal      = "personal"
	Work          = "work"
	Finance       = "finance"
	Shopping      = "shopping"
	Travel        = "travel"
	Newsletters   = "newsletters"
	Promotions    = "promotions"
	Social        = "social"
	Notifications = "notifications"
	Security      = "security"
	Other         = "other"
)

// Category is one category of a taxonomy.
type Category struct {
	// Name is the lowercase name, as it appears in classifications ("newsletters").
	Name string
	// Description says in one line what belongs in the category; the language
	// model reads it in its prompt.
	Description string
}

// Taxonomy is the ordered list of categories a user's mail is sorted into.
type Taxonomy []Category

// defaultTaxonomy is kept unexported so that no caller can change it in place.
var defaultTaxonomy = Taxonomy{
	{Important, "Time-sensitive mail from a real person or service that needs attention or action soon."},
	{Personal, "Conversations with family and friends, and private matters that are not work."},
	{Work, "Mail about the recipient's job: colleagues, clients, projects, meetings and invitations."},
	{Finance, "Banking, bills, invoices, payments, taxes, investments and payroll."},
	{Shopping, "Orders, receipts, shipping and delivery updates, returns for things bought."},
	{Travel, "Flights, trains, hotels, rental cars, bookings, itineraries and check-in reminders."},
	{Newsletters, "Editorial content the recipient subscribed to: digests, blogs, mailing lists."},
	{Promotions, "Marketing: sales, discounts, coupons, product announcements and offers."},
	{Social, "Social networks and communities: mentions, messages, friend and follower updates."},
	{Notifications, "Automated messages from services and tools: alerts, status reports, reminders."},
	{Security, "Account security: sign-in alerts, password resets, verification codes, 2FA changes."},
	{Other, "Anything that fits none of the other categories."},
}

// DefaultTaxonomy returns a copy of the taxonomy every user starts with.
func DefaultTaxonomy() Taxonomy {
	return append(Taxonomy(nil), defaultTaxonomy...)
}

// Has reports whether the taxonomy has a category named name.
func (t Taxonomy) Has(name string) bool {
	for _, c := range t {
		if c.Name == name {
			return true
		}
	}
	return false
}

// Names returns the category names, in order.
func (t Taxonomy) Names() []string {
	names := make([]string, len(t))
	for i, c := range t {
		names[i] = c.Name
	}
	return names
}

// categoryName is what a category name may be: lowercase, short, safe to put
// in a JSON schema enum, a URL and a SQL value without escaping.
var categoryName = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// MaxCategories bounds a taxonomy's size, and MaxDescription each
// category's description in characters: the taxonomy is sent in every
// prompt, and a user must not be able to make every request of theirs cost
// thousands of tokens.
const (
	MaxCategories  = 50
	MaxDescription = 300
)

// Validate checks that the taxonomy is usable: 1 to MaxCategories categories
// with valid, unique names and a description each, one of them Other.
func (t Taxonomy) Validate() error {
	if len(t) == 0 || len(t) > MaxCategories {
		return apierror.Invalid("categories", "must hold 1 to %d categories", MaxCategories)
	}
	seen := make(map[string]bool, len(t))
	for i, c := range t {
		field := fmt.Sprintf("categories[%d]", i)
		if !categoryName.MatchString(c.Name) {
			return apierror.Invalid(field+".name", "must be 1 to 32 lowercase letters, digits or hyphens, starting with a letter")
		}
		if seen[c.Name] {
			return apierror.Invalid(field+".name", "%q appears twice", c.Name)
		}
		seen[c.Name] = true
		if c.Description == "" {
			return apierror.Invalid(field+".description", "is required")
		}
		if n := utf8.RuneCountInString(c.Description); n > MaxDescription {
			return apierror.Invalid(field+".description", "must be at most %d characters, not %d", MaxDescription, n)
		}
	}
	if !seen[Other] {
		return apierror.Invalid("categories", "must include %q", Other)
	}
	return nil
}
