// Package protoenum maps the enums that mailroom.mail.v1 shares between
// services (lane, priority, classification source) to and from their
// lowercase names ("backfill", "high", "llm"): the names the services'
// domain types and the mail.received subjects use. The zero enum value and
// the empty name stand for each other.
package protoenum

import mailv1 "mailroom.dev/gen/go/mailroom/mail/v1"

var (
	lanes = names[mailv1.Lane]{
		mailv1.Lane_LANE_INTERACTIVE: "interactive",
		mailv1.Lane_LANE_LIVE:        "live",
		mailv1.Lane_LANE_BACKFILL:    "backfill",
	}
	priorities = names[mailv1.Priority]{
		mailv1.Priority_PRIORITY_LOW:    "low",
		mailv1.Priority_PRIORITY_NORMAL: "normal",
		mailv1.Priority_PRIORITY_HIGH:   "high",
	}
	sources = names[mailv1.ClassificationSource]{
		mailv1.ClassificationSource_CLASSIFICATION_SOURCE_RULES:   "rules",
		mailv1.ClassificationSource_CLASSIFICATION_SOURCE_LLM:     "llm",
		mailv1.ClassificationSource_CLASSIFICATION_SOURCE_CACHE:   "cache",
		mailv1.ClassificationSource_CLASSIFICATION_SOURCE_LEARNED: "learned",
		mailv1.ClassificationSource_CLASSIFICATION_SOURCE_USER:    "user",
	}
)

// LaneName is the name of l ("" for unspecified or unknown).
func LaneName(l mailv1.Lane) string { return lanes[l] }

// Lane is the lane called name (unspecified for another name).
func Lane(name string) mailv1.Lane { return lanes.value(name) }

// PriorityName is the name of p ("" for unspecified or unknown).
func PriorityName(p mailv1.Priority) string { return priorities[p] }

// Priority is the priority called name (unspecified for another name).
func Priority(name string) mailv1.Priority { return priorities.value(name) }

// SourceName is the name of s ("" for unspecified or unknown).
func SourceName(s mailv1.ClassificationSource) string { return sources[s] }

// Source is the source called name (unspecified for another name).
func Source(name string) mailv1.ClassificationSource { return sources.value(name) }

// names maps an enum's values to their names.
type names[E ~int32] map[E]string

func (n names[E]) value(name string) E {
	for v, s := range n {
		if s == name {
			return v
		}
	}
	return 0
}
