// SPDX-License-Identifier: Apache-2.0
// Small RETURN_IF_ERROR / ASSIGN_OR_RETURN helpers: Abseil 20220623 does not
// ship absl/status/status_macros.h.

#ifndef CANAL_SRC_INTERNAL_STATUS_MACROS_H_
#define CANAL_SRC_INTERNAL_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CANAL_CONCAT_INNER_(a, b) a##b
#define CANAL_CONCAT_(a, b) CANAL_CONCAT_INNER_(a, b)

// Returns from the current function if `expr` (an absl::Status) is not OK.
#define CANAL_RETURN_IF_ERROR(expr)                \
  do {                                             \
    ::absl::Status canal_status_ = (expr);         \
    if (!canal_status_.ok()) return canal_status_; \
  } while (false)

// `lhs = *expr` if `expr` (an absl::StatusOr) is OK, else returns its status.
#define CANAL_ASSIGN_OR_RETURN(lhs, expr)                                     \
  CANAL_ASSIGN_OR_RETURN_IMPL_(CANAL_CONCAT_(canal_statusor_, __LINE__), lhs, \
                               expr)

#define CANAL_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return std::move(tmp).status();     \
  lhs = *std::move(tmp)

#endif  // CANAL_SRC_INTERNAL_STATUS_MACROS_H_
