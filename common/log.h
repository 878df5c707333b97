// A small logging facade (Debian 12's Abseil has no absl/log).
//
//   VGPU_LOG(INFO) << "listening on " << path;
//   VGPU_LOG_GUEST_ERROR() << "rect outside resource " << id;   // rate-limited
//   VGPU_CHECK(ptr != nullptr) << "only where going on would corrupt memory";
//
// Guest errors are counted always and printed at most kGuestErrorBurst times
// per second, so a hostile guest cannot fill the disk.
#pragma once

#include <cstdint>
#include <sstream>
#include <string_view>

namespace vgpu {

enum class LogSeverity {
  kDebug = 0,
  kInfo = 1,
  kWarning = 2,
  kError = 3,
  kFatal = 4
};

// Lines below this severity are dropped. Default kInfo; VGPU_LOG_LEVEL=debug
// in the environment lowers it at start-up.
void SetMinLogSeverity(LogSeverity severity);
LogSeverity MinLogSeverity();

// Counters of guest errors seen and of the lines the rate limit dropped.
uint64_t GuestErrorCount();
uint64_t SuppressedGuestErrorLines();

namespace log_internal {

inline constexpr uint32_t kGuestErrorBurst = 20;

// Returns true if a guest-error line may be printed now (token bucket).
bool TakeGuestErrorToken();

class LogMessage {
 public:
  LogMessage(LogSeverity severity, const char* file, int line,
             std::string_view category = {});
  ~LogMessage();
  LogMessage(const LogMessage&) = delete;
  LogMessage& operator=(const LogMessage&) = delete;
  std::ostream& stream() { return stream_; }

 private:
  LogSeverity severity_;
  std::ostringstream stream_;
};

// Swallows a stream expression when the line is disabled.
struct Voidify {
  void operator&(std::ostream&) {}
};

}  // namespace log_internal
}  // namespace vgpu

#define VGPU_LOG_SEVERITY_DEBUG ::vgpu::LogSeverity::kDebug
#define VGPU_LOG_SEVERITY_INFO ::vgpu::LogSeverity::kInfo
#define VGPU_LOG_SEVERITY_WARNING ::vgpu::LogSeverity::kWarning
#define VGPU_LOG_SEVERITY_ERROR ::vgpu::LogSeverity::kError
#define VGPU_LOG_SEVERITY_FATAL ::vgpu::LogSeverity::kFatal

// The stream macros expand to a conditional expression that the caller's
// `<< ...` continues: their replacement cannot be parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define VGPU_LOG(severity)                                                 \
  (VGPU_LOG_SEVERITY_##severity < ::vgpu::MinLogSeverity())                \
      ? (void)0                                                            \
      : ::vgpu::log_internal::Voidify() &                                  \
            ::vgpu::log_internal::LogMessage(VGPU_LOG_SEVERITY_##severity, \
                                             __FILE__, __LINE__)           \
                .stream()

#define VGPU_LOG_GUEST_ERROR()                                              \
  !::vgpu::log_internal::TakeGuestErrorToken()                              \
      ? (void)0                                                             \
      : ::vgpu::log_internal::Voidify() &                                   \
            ::vgpu::log_internal::LogMessage(::vgpu::LogSeverity::kWarning, \
                                             __FILE__, __LINE__, "guest")   \
                .stream()

// Always on. Only for states where continuing would corrupt memory.
#define VGPU_CHECK(condition)                                            \
  (condition) ? (void)0                                                  \
              : ::vgpu::log_internal::Voidify() &                        \
                    ::vgpu::log_internal::LogMessage(                    \
                        ::vgpu::LogSeverity::kFatal, __FILE__, __LINE__) \
                            .stream()                                    \
                        << "Check failed: " #condition " "

// NOLINTEND(bugprone-macro-parentheses)
#ifdef NDEBUG
#define VGPU_DCHECK(condition) \
  while (false) VGPU_CHECK(condition)
#else
#define VGPU_DCHECK(condition) VGPU_CHECK(condition)
#endif
