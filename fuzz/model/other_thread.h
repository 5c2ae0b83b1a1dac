// A second thread that runs one task at a time for the model and waits for it, so the model
// stays sequential and deterministic while objects still cross threads (remote frees, objects
// allocated by one thread and freed by another, a thread that exits with live objects).
#pragma once

#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace mesh::model {

class OtherThread {
 public:
  OtherThread() = default;
  OtherThread(const OtherThread&) = delete;
  OtherThread& operator=(const OtherThread&) = delete;
  ~OtherThread() { stop(); }

  // Runs fn on the thread (starting it when needed) and returns once fn has returned.
  void run(const std::function<void()>& fn);
  // Lets the thread exit and joins it. The next run() starts a new thread.
  void stop();
  bool running() const { return thread_.joinable(); }
  // True on the other thread itself.
  bool isCurrent() const { return running() && std::this_thread::get_id() == id_; }

 private:
  void loop();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable finished_;
  const std::function<void()>* task_ = nullptr;  // guarded by mutex_
  bool quit_ = false;                            // guarded by mutex_
  std::thread thread_;
  std::thread::id id_;
};

}  // namespace mesh::model
