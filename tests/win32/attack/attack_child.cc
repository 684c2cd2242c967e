// SPDX-License-Identifier: Apache-2.0
// win32_attack_child: the second process of the Win32 attack tests. It plays
// the attacker (or the innocent bystander) who holds or plants canal's
// kernel objects, and keeps them until its standard input reaches end of
// file (the test closes it) or it is killed. The first argument selects what
// it does:
//   hold SECTION          open the existing section SECTION for reading and
//                         keep the handle
//   plant SECTION OWNER CONTENT
//                         create SECTION (32 bytes) and fill it. OWNER is
//                         "default" (the system's default descriptor) or a
//                         SID string (descriptor "O:<SID>D:P(A;;GA;;;WD)").
//                         CONTENT is "garbage" (bytes that are no canal
//                         section), "open-self" / "closed-self" (a version-2
//                         section naming this process, with its creation
//                         time) or "open-self-wrong-time" (this pid with a
//                         creation time it does not have, as after pid
//                         reuse)
//   wait                  do nothing (a process to take the pid of)
// It prints "ready" once the object is in place, or "error <code>" and
// exits 101. Exit code 100 for a usage error.

#include <windows.h>

#include <sddl.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "win32/raw_win32.h"

namespace {

using canal_win32_test::MetaBytes;
using canal_win32_test::MetaState;
using canal_win32_test::ProcessCreationTime;

int Fail(const char* what) {
  std::printf("error %s %lu\n", what, GetLastError());
  std::fflush(stdout);
  return 101;
}

std::wstring Widen(const char* narrow) {
  return std::wstring(narrow, narrow + std::strlen(narrow));
}

// Blocks until the parent closes our standard input.
int HoldUntilEndOfInput() {
  std::printf("ready\n");
  std::fflush(stdout);
  char buffer[64];
  DWORD got = 0;
  HANDLE in = GetStdHandle(STD_INPUT_HANDLE);
  while (ReadFile(in, buffer, sizeof(buffer), &got, nullptr) && got > 0) {
  }
  return 0;
}

int Plant(const char* section_name, const char* owner, const char* content) {
  SECURITY_ATTRIBUTES attributes = {sizeof(attributes), nullptr, FALSE};
  PSECURITY_DESCRIPTOR descriptor = nullptr;
  if (std::strcmp(owner, "default") != 0) {
    const std::wstring sddl = L"O:" + Widen(owner) + L"D:P(A;;GA;;;WD)";
    if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(
            sddl.c_str(), SDDL_REVISION_1, &descriptor, nullptr)) {
      return Fail("sddl");
    }
    attributes.lpSecurityDescriptor = descriptor;
  }
  const std::wstring name = Widen(section_name);
  HANDLE section = CreateFileMappingW(
      INVALID_HANDLE_VALUE, descriptor != nullptr ? &attributes : nullptr,
      PAGE_READWRITE, 0, 32, name.c_str());
  if (section == nullptr) return Fail("create");
  if (GetLastError() == ERROR_ALREADY_EXISTS) return Fail("exists");
  void* view = MapViewOfFile(section, FILE_MAP_WRITE, 0, 0, 32);
  if (view == nullptr) return Fail("map");
  const uint64_t created = ProcessCreationTime(GetCurrentProcess());
  const uint32_t pid = GetCurrentProcessId();
  std::string bytes;
  if (std::strcmp(content, "garbage") == 0) {
    bytes = std::string(32, '\x5a');
  } else if (std::strcmp(content, "open-self") == 0) {
    bytes = MetaBytes(1024, MetaState::kOpen, pid, created);
  } else if (std::strcmp(content, "closed-self") == 0) {
    bytes = MetaBytes(1024, MetaState::kClosed, pid, created);
  } else if (std::strcmp(content, "open-self-wrong-time") == 0) {
    bytes = MetaBytes(1024, MetaState::kOpen, pid, created + 10000000);
  } else {
    std::printf("error content\n");
    return 100;
  }
  std::memcpy(view, bytes.data(), bytes.size());
  return HoldUntilEndOfInput();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "hold") == 0) {
    const std::wstring name = Widen(argv[2]);
    HANDLE section = OpenFileMappingW(FILE_MAP_READ, FALSE, name.c_str());
    if (section == nullptr) return Fail("open");
    return HoldUntilEndOfInput();
  }
  if (argc == 5 && std::strcmp(argv[1], "plant") == 0) {
    return Plant(argv[2], argv[3], argv[4]);
  }
  if (argc == 2 && std::strcmp(argv[1], "wait") == 0) {
    return HoldUntilEndOfInput();
  }
  std::printf("usage error\n");
  return 100;
}
