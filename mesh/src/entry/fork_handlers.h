// The process's fork handlers (pthread_atfork) and the fork() wrapper's preparation. The global
// heap's part of fork is in global/fork.cc, which describes the protocol.
#pragma once

namespace mesh {

// Registers the handlers (once, at start-up).
void registerForkHandlers();
// Called by the fork() wrapper before the real fork: false when the child could not be given a
// private copy of the meshed heap (fork must then fail with ENOMEM).
bool reserveForkFile();

}  // namespace mesh
