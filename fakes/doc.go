// Package fakes holds the project's test servers for the outside services
// mailroom talks to: fakeopenai (an OpenAI-compatible API with real limits,
// headers and faults) and fakegmail (the Gmail API and Google's OAuth
// endpoints). They are reached over HTTP through the real client libraries,
// and are as strict as the services they stand in for. Nothing in a
// production binary imports them; `mailroom fakeopenai` serves one for
// people to try mailroom against.
package fakes
