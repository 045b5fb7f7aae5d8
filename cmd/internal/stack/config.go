package stack

import "github.com/parleychat/parley/cmd/internal/chatdenv"

// Config is chatd's configuration, parsed and checked once by
// cmd/internal/chatdenv (chatd's flags over the environment, or
// chatdenv.Load for code without a command line).
type Config = chatdenv.Config
