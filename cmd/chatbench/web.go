package main

import (
	"net/http"

	"github.com/chatbench/chatbench/web"
)

// webHandler returns the embedded chat page.
func webHandler() http.Handler { return web.Handler() }
