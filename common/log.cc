#include "common/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "common/mutex.h"

namespace vgpu {
namespace {

LogSeverity InitialSeverity() {
  const char* env = std::getenv("VGPU_LOG_LEVEL");
  if (env == nullptr) return LogSeverity::kInfo;
  if (std::strcmp(env, "debug") == 0) return LogSeverity::kDebug;
  if (std::strcmp(env, "warning") == 0) return LogSeverity::kWarning;
  if (std::strcmp(env, "error") == 0) return LogSeverity::kError;
  return LogSeverity::kInfo;
}

std::atomic<int> min_severity{static_cast<int>(InitialSeverity())};
std::atomic<uint64_t> guest_errors{0};
std::atomic<uint64_t> suppressed_guest_lines{0};

// Token bucket: kGuestErrorBurst tokens, refilled to full once a second.
Mutex bucket_mu;
int64_t bucket_second VGPU_GUARDED_BY(bucket_mu) = -1;
uint32_t bucket_tokens VGPU_GUARDED_BY(bucket_mu) = 0;

char SeverityLetter(LogSeverity severity) {
  switch (severity) {
    case LogSeverity::kDebug:
      return 'D';
    case LogSeverity::kInfo:
      return 'I';
    case LogSeverity::kWarning:
      return 'W';
    case LogSeverity::kError:
      return 'E';
    case LogSeverity::kFatal:
      return 'F';
  }
  return '?';
}

}  // namespace

void SetMinLogSeverity(LogSeverity severity) {
  min_severity.store(static_cast<int>(severity), std::memory_order_relaxed);
}

LogSeverity MinLogSeverity() {
  return static_cast<LogSeverity>(min_severity.load(std::memory_order_relaxed));
}

uint64_t GuestErrorCount() {
  return guest_errors.load(std::memory_order_relaxed);
}

uint64_t SuppressedGuestErrorLines() {
  return suppressed_guest_lines.load(std::memory_order_relaxed);
}

namespace log_internal {

bool TakeGuestErrorToken() {
  guest_errors.fetch_add(1, std::memory_order_relaxed);
  if (LogSeverity::kWarning < MinLogSeverity()) return false;
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  MutexLock lock(&bucket_mu);
  if (now != bucket_second) {
    bucket_second = now;
    bucket_tokens = kGuestErrorBurst;
  }
  if (bucket_tokens == 0) {
    suppressed_guest_lines.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  --bucket_tokens;
  return true;
}

LogMessage::LogMessage(LogSeverity severity, const char* file, int line,
                       std::string_view category)
    : severity_(severity) {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  tm utc{};
  gmtime_r(&ts.tv_sec, &utc);
  char stamp[32];
  std::snprintf(stamp, sizeof(stamp), "%02d:%02d:%02d.%03ld", utc.tm_hour,
                utc.tm_min, utc.tm_sec, ts.tv_nsec / 1000000);
  const char* base = std::strrchr(file, '/');
  stream_ << SeverityLetter(severity) << ' ' << stamp << ' '
          << (base ? base + 1 : file) << ':' << line << "] ";
  if (!category.empty()) stream_ << '[' << category << "] ";
}

LogMessage::~LogMessage() {
  stream_ << '\n';
  std::string text = stream_.str();
  std::fwrite(text.data(), 1, text.size(), stderr);
  if (severity_ == LogSeverity::kFatal) {
    std::fflush(stderr);
    std::abort();
  }
}

}  // namespace log_internal
}  // namespace vgpu
