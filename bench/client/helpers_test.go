package client_test

import "github.com/chatbench/chatbench/server/connector"

func connectorUnlimited() connector.Options {
	return connector.Options{RequestRate: -1}
}
