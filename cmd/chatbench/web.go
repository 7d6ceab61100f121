package main

import "net/http"

// webHandler returns the embedded chat page (nil until the web package exists).
func webHandler() http.Handler { return nil }
