package gate

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// build returns the two binaries (baseline, candidate): given ones as they
// are, refs built from temporary worktrees under os.TempDir (one build when
// both refs are the same commit). cleanup removes the worktrees; the built
// binaries stay in Out/bin so the runs can be repeated.
func build(ctx context.Context, o Options, res *Result) (bins [2]string, cleanup func(), err error) {
	var tmp string
	cleanup = func() {
		if tmp == "" {
			return
		}
		for _, side := range []string{BaselineName, CandidateName} {
			wt := filepath.Join(tmp, side)
			if _, err := os.Stat(wt); err == nil {
				_ = git(context.Background(), o.Repo, "worktree", "remove", "--force", wt)
			}
		}
		_ = git(context.Background(), o.Repo, "worktree", "prune")
		os.RemoveAll(tmp)
	}
	built := map[string]string{} // commit -> binary
	for i, v := range []Version{o.Baseline, o.Candidate} {
		name := []string{BaselineName, CandidateName}[i]
		side := &res.Baseline
		if i == 1 {
			side = &res.Candidate
		}
		side.BenchArgs = v.BenchArgs
		if v.Binary != "" {
			abs, err := filepath.Abs(v.Binary)
			if err != nil {
				return bins, cleanup, err
			}
			if st, err := os.Stat(abs); err != nil || st.IsDir() {
				return bins, cleanup, fmt.Errorf("%s binary %s: not a file", name, v.Binary)
			}
			bins[i], side.Binary = abs, abs
			continue
		}
		commit, err := gitOut(ctx, o.Repo, "rev-parse", "--verify", "--quiet", v.Ref+"^{commit}")
		if err != nil {
			return bins, cleanup, fmt.Errorf("%s ref %q is not a commit in %s: %w", name, v.Ref, o.Repo, err)
		}
		side.Ref, side.Commit = v.Ref, commit[:min(12, len(commit))]
		if b, ok := built[commit]; ok {
			bins[i], side.Binary = b, b
			continue
		}
		if tmp == "" {
			if tmp, err = os.MkdirTemp("", "chatbench-gate-"); err != nil {
				return bins, cleanup, err
			}
		}
		wt := filepath.Join(tmp, name)
		fmt.Fprintf(o.Log, "chatbench gate: building %s %s (%s) in %s\n", name, v.Ref, side.Commit, wt)
		if err := git(ctx, o.Repo, "worktree", "add", "--detach", wt, commit); err != nil {
			return bins, cleanup, fmt.Errorf("%s: worktree for %s: %w", name, v.Ref, err)
		}
		bin, err := filepath.Abs(filepath.Join(o.Out, "bin", "chatbench-"+name))
		if err != nil {
			return bins, cleanup, err
		}
		cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", "-X main.commit="+side.Commit, "-o", bin, "./cmd/chatbench")
		cmd.Dir = wt
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return bins, cleanup, fmt.Errorf("%s: go build of %s (%s): %w\n%s", name, v.Ref, side.Commit, err, out.String())
		}
		built[commit] = bin
		bins[i], side.Binary = bin, bin
	}
	return bins, cleanup, nil
}

func git(ctx context.Context, repo string, args ...string) error {
	_, err := gitOut(ctx, repo, args...)
	return err
}

func gitOut(ctx context.Context, repo string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, msg)
		}
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
