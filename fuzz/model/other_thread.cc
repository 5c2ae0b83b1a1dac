#include "model/other_thread.h"

namespace mesh::model {

void OtherThread::run(const std::function<void()>& fn) {
  if (!running()) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      quit_ = false;
    }
    thread_ = std::thread([this] { loop(); });
    id_ = thread_.get_id();
  }
  std::unique_lock<std::mutex> lock(mutex_);
  task_ = &fn;
  wake_.notify_one();
  finished_.wait(lock, [this] { return task_ == nullptr; });
}

void OtherThread::stop() {
  if (!running()) return;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    quit_ = true;
  }
  wake_.notify_one();
  thread_.join();
  id_ = std::thread::id();
}

void OtherThread::loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return task_ != nullptr || quit_; });
    if (task_ != nullptr) {
      const std::function<void()>* task = task_;
      lock.unlock();
      (*task)();
      lock.lock();
      task_ = nullptr;
      finished_.notify_one();
      continue;
    }
    return;  // quit_ and nothing left to run
  }
}

}  // namespace mesh::model
