// Early-return helpers for absl::Status / absl::StatusOr (Debian 12's Abseil
// predates ABSL_RETURN_IF_ERROR). Two macros, no builder DSL.
//
//   VGPU_RETURN_IF_ERROR(DoThing());
//   VGPU_ASSIGN_OR_RETURN(auto value, ComputeValue());
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define VGPU_STATUS_CONCAT_INNER(a, b) a##b
#define VGPU_STATUS_CONCAT(a, b) VGPU_STATUS_CONCAT_INNER(a, b)

#define VGPU_RETURN_IF_ERROR(expr)                              \
  do {                                                          \
    if (absl::Status vgpu_status_ = (expr); !vgpu_status_.ok()) \
      return vgpu_status_;                                      \
  } while (false)

#define VGPU_ASSIGN_OR_RETURN(lhs, expr)                                   \
  VGPU_ASSIGN_OR_RETURN_IMPL(VGPU_STATUS_CONCAT(vgpu_statusor_, __LINE__), \
                             lhs, expr)

// `lhs` is a declaration or an lvalue: it cannot be parenthesised.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define VGPU_ASSIGN_OR_RETURN_IMPL(statusor, lhs, expr)    \
  auto statusor = (expr);                                  \
  if (!statusor.ok()) return std::move(statusor).status(); \
  lhs = std::move(statusor).value()
// NOLINTEND(bugprone-macro-parentheses)
