// Overflow-checked integer arithmetic for guest-controlled values.
// Every result is std::nullopt on overflow or when it does not fit T.
//
//   auto bytes = CheckedMul<uint64_t>(stride, height);
//   if (!bytes) return InvalidParameter("size overflows");
#pragma once

#include <cstdint>
#include <optional>
#include <type_traits>

namespace vgpu {

template <typename T, typename A, typename B>
constexpr std::optional<T> CheckedAdd(A a, B b) {
  static_assert(std::is_integral_v<T> && std::is_integral_v<A> &&
                std::is_integral_v<B>);
  T result;
  if (__builtin_add_overflow(a, b, &result)) return std::nullopt;
  return result;
}

template <typename T, typename A, typename B>
constexpr std::optional<T> CheckedSub(A a, B b) {
  static_assert(std::is_integral_v<T> && std::is_integral_v<A> &&
                std::is_integral_v<B>);
  T result;
  if (__builtin_sub_overflow(a, b, &result)) return std::nullopt;
  return result;
}

template <typename T, typename A, typename B>
constexpr std::optional<T> CheckedMul(A a, B b) {
  static_assert(std::is_integral_v<T> && std::is_integral_v<A> &&
                std::is_integral_v<B>);
  T result;
  if (__builtin_mul_overflow(a, b, &result)) return std::nullopt;
  return result;
}

// Same-type shorthands for the common 64-bit case.
constexpr std::optional<uint64_t> CheckedAdd64(uint64_t a, uint64_t b) {
  return CheckedAdd<uint64_t>(a, b);
}
constexpr std::optional<uint64_t> CheckedMul64(uint64_t a, uint64_t b) {
  return CheckedMul<uint64_t>(a, b);
}

// True when [offset, offset + length) lies inside [0, total) without wrapping.
constexpr bool RangeInside(uint64_t offset, uint64_t length, uint64_t total) {
  return offset <= total && length <= total - offset;
}

}  // namespace vgpu
