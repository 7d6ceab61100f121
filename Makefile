# chatbench Makefile. Each target belongs to its owner (see docs/TEAM.md).

GO ?= go

# smoke (web helper): the browser smoke test only. Needs Debian's chromium
# (apt-get install -y chromium); skips without it, fails without it under CI=true.
# Screenshots land in results/smoke/.
.PHONY: smoke
smoke:
	$(GO) test -count=1 -run 'TestSmoke' -v ./web/
