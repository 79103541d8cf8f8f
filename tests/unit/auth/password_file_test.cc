// Mosquitto password files: the line rules Debian's mosquitto 2.0.11 follows (comments, lines
// without ':', CRLF, blanks, a later duplicate wins, bad entries dropped), every warning and
// error with its FILE:LINE, the bounds, reading from disk, and interop: a file written by the real
// mosquitto_passwd (skipped when it is not installed) verifies here.
#include "auth/password_file.h"
#include "auth/password_file_verifier.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace coremq::auth {
namespace {

using config::Diagnostic;
using config::format_diagnostic;

// mosquitto_passwd 2.0.11: "other" (sha512-pbkdf2, 101 iterations) and "hunter2" (sha512).
constexpr std::string_view kOther =
    "$7$101$RgCqAUXb2UyNO1kB$fkJV/"
    "5jyvXmwsXL5FeKRPLtvIyblP2esMqekWw8XAyW1vrw6+zzUIfCKdiGIRamaDQrUNOCzhfEYXcmO+iGpEg==";
constexpr std::string_view kHunter2 =
    "$6$E+NggzvX21QIy9oW$AyIuGz5L1DS+LoxrZSBJdiplGzn2x5vpv8KLampStzQunG4cDHcGVy+qRoH+nfhgAW2Dc/"
    "asB64FEUjdBTvy0g==";
constexpr std::string_view kArgon2Password =
    "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc";

std::vector<std::string> formatted(const std::vector<Diagnostic>& diagnostics) {
  std::vector<std::string> lines;
  for (const Diagnostic& diagnostic : diagnostics) lines.push_back(format_diagnostic(diagnostic));
  return lines;
}

std::shared_ptr<const PasswordFile> parse(const std::string& text, std::vector<Diagnostic>* diagnostics,
                                          const PasswordFileLimits& limits = {}) {
  return PasswordFile::parse(text, "pw", limits, diagnostics);
}

TEST(PasswordFile, ReadsLinesTheWayMosquittoDoes) {
  std::string text;
  text += "# a comment:with colons\n";                     // 1
  text += "\n";                                            // 2
  text += "alice:" + std::string(kOther) + "\n";           // 3
  text += "bob:" + std::string(kHunter2) + "\r\n";         // 4 CRLF
  text += "  carol \t:  " + std::string(kOther) + "  \n";  // 5 blanks trimmed
  text += "no colon on this line\n";                       // 6 skipped silently, like Mosquitto
  text += " #dave:" + std::string(kOther) + "\n";          // 7 not a comment: user "#dave"
  text += "erin:" + std::string(kArgon2Password);          // 8 no final newline
  std::vector<Diagnostic> diagnostics;
  auto file = parse(text, &diagnostics);
  ASSERT_NE(file, nullptr) << ::testing::PrintToString(formatted(diagnostics));
  EXPECT_TRUE(diagnostics.empty()) << ::testing::PrintToString(formatted(diagnostics));
  EXPECT_EQ(file->size(), 5u);
  EXPECT_EQ(file->stats().lines, 8u);
  EXPECT_EQ(file->stats().users, 5u);
  EXPECT_EQ(file->verify("alice", "other"), PasswordFile::Result::kAccepted);
  EXPECT_EQ(file->verify("alice", "hunter2"), PasswordFile::Result::kWrongPassword);
  EXPECT_EQ(file->verify("bob", "hunter2"), PasswordFile::Result::kAccepted);
  EXPECT_EQ(file->verify("carol", "other"), PasswordFile::Result::kAccepted);
  EXPECT_EQ(file->verify(" carol", "other"), PasswordFile::Result::kUnknownUser);
  EXPECT_EQ(file->verify("#dave", "other"), PasswordFile::Result::kAccepted);
  EXPECT_EQ(file->verify("erin", "password"), PasswordFile::Result::kAccepted);
  EXPECT_EQ(file->verify("erin", "Password"), PasswordFile::Result::kWrongPassword);
  EXPECT_EQ(file->verify("# a comment", "with colons"), PasswordFile::Result::kUnknownUser);
  EXPECT_EQ(file->verify("mallory", "other"), PasswordFile::Result::kUnknownUser);
  ASSERT_NE(file->find("bob"), nullptr);
  EXPECT_EQ(file->find("bob")->scheme, HashScheme::kSha512);
  EXPECT_EQ(file->find("erin")->scheme, HashScheme::kArgon2id);
  EXPECT_EQ(file->find("nobody"), nullptr);
}

TEST(PasswordFile, LaterDuplicateWinsUnlessItIsBroken) {
  std::string text = "alice:" + std::string(kHunter2) + "\n" +  // 1
                     "alice:" + std::string(kOther) + "\n" +    // 2 replaces line 1
                     "alice:plain\n" +                          // 3 dropped: line 2 stays
                     "bob:" + std::string(kHunter2) + "\n" +    // 4
                     "bob:" + std::string(kOther) + "\n";       // 5 replaces line 4
  std::vector<Diagnostic> diagnostics;
  auto file = parse(text, &diagnostics);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->verify("alice", "other"), PasswordFile::Result::kAccepted);
  EXPECT_EQ(file->verify("alice", "hunter2"), PasswordFile::Result::kWrongPassword);
  EXPECT_EQ(file->verify("bob", "other"), PasswordFile::Result::kAccepted);
  EXPECT_EQ(file->stats().duplicate_users, 2u);
  EXPECT_EQ(file->stats().entries_dropped, 1u);
  EXPECT_EQ(
      formatted(diagnostics),
      (std::vector<std::string>{
          "pw:2: warning: user 'alice' again (first on line 1): this later line wins",
          "pw:3: warning: user 'alice': not a password hash (plain text? run coremq-passwd -U on the file): "
          "entry dropped",
          "pw:5: warning: user 'bob' again (first on line 4): this later line wins",
      }));
}

TEST(PasswordFile, DropsBadEntriesNamingTheirLines) {
  std::string text =
      "carol:\n"              // 1 no hash
      "dave:plain\n"          // 2 plain text
      "eve:$7$0$AAAA$BBBB\n"  // 3 malformed
      ":kim:" +
      std::string(kOther) + "\n" +  // 4 empty username
      "frank:$7$5000000$RgCqAUXb2UyNO1kB$fkJV/5jyvXmwsXL5FeKRPLtvIyblP2esMqekWw8XAyW1vrw6+"
      "zzUIfCKdiGIRamaDQrUNOCzhfEYXcmO+iGpEg==\n" +  // 5 over the limit
      "jo:" +
      std::string(kOther) + ":extra\n" +  // 6 kept, extra ignored
      "gina:$5$abc$def\n";                // 7 unknown scheme
  std::vector<Diagnostic> diagnostics;
  auto file = parse(text, &diagnostics);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->size(), 1u);
  EXPECT_EQ(file->verify("jo", "other"), PasswordFile::Result::kAccepted);
  for (const char* user : {"carol", "dave", "eve", "kim", "frank", "gina"}) {
    EXPECT_EQ(file->verify(user, "other"), PasswordFile::Result::kUnknownUser) << user;
  }
  EXPECT_EQ(file->stats().entries_dropped, 6u);
  EXPECT_EQ(file->stats().entries_over_limit, 1u);
  EXPECT_EQ(
      formatted(diagnostics),
      (std::vector<std::string>{
          "pw:1: warning: no password hash for user 'carol': entry dropped",
          "pw:2: warning: user 'dave': not a password hash (plain text? run coremq-passwd -U on the file): "
          "entry dropped",
          "pw:3: warning: user 'eve': a $7$ hash's iteration count must be a number from 1: entry dropped",
          "pw:4: warning: empty username before ':': entry dropped",
          "pw:5: warning: user 'frank': PBKDF2 iteration count 5000000 is above the limit 1000000: entry "
          "dropped",
          "pw:6: warning: user 'jo': text after a second ':' ignored",
          "pw:7: warning: user 'gina': unknown hash scheme (coremq reads $6$, $7$ and $argon2id$): entry "
          "dropped",
      }));
}

TEST(PasswordFile, BoundsAreErrorsThatRefuseTheFile) {
  std::vector<Diagnostic> diagnostics;
  PasswordFileLimits limits;
  limits.users_max = 2;
  std::string three = "a:" + std::string(kOther) + "\nb:" + std::string(kOther) +
                      "\nb:" + std::string(kOther) + "\nc:" + std::string(kOther) + "\n";
  EXPECT_EQ(parse(three, &diagnostics, limits), nullptr);
  EXPECT_EQ(formatted(diagnostics).back(), "pw:4: error: more than 2 users in the password file");

  diagnostics.clear();
  limits = {};
  limits.line_bytes_max = 200;
  std::string long_line = "a:" + std::string(kOther) + "\n" + std::string(201, 'x') + ":y\n";
  EXPECT_EQ(parse(long_line, &diagnostics, limits), nullptr);
  EXPECT_EQ(formatted(diagnostics).back(), "pw:2: error: line of 203 bytes is above the limit 200");

  diagnostics.clear();
  limits = {};
  limits.file_bytes_max = 100;
  EXPECT_EQ(parse("a:" + std::string(kOther) + "\n", &diagnostics, limits), nullptr);
  EXPECT_EQ(formatted(diagnostics).back(), "pw: error: password file is 115 bytes, above the limit 100");

  diagnostics.clear();
  EXPECT_EQ(parse(std::string("a:b\nc\0d:e\n", 10), &diagnostics), nullptr);
  EXPECT_EQ(formatted(diagnostics).back(), "pw:2: error: NUL byte in line (not a text file?)");
}

TEST(PasswordFile, EmptyFileHasNoUsers) {
  std::vector<Diagnostic> diagnostics;
  auto file = parse("", &diagnostics);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->size(), 0u);
  EXPECT_EQ(file->verify("anyone", ""), PasswordFile::Result::kUnknownUser);
}

TEST(PasswordFile, PasswordBoundFromTheLimits) {
  std::vector<Diagnostic> diagnostics;
  PasswordFileLimits limits;
  limits.hash.password_bytes_max = 4;
  auto file = parse("bob:" + std::string(kHunter2) + "\n", &diagnostics, limits);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->verify("bob", "hunter2"), PasswordFile::Result::kPasswordTooLong);
  EXPECT_EQ(file->verify("bob", "hunt"), PasswordFile::Result::kWrongPassword);
}

// A user whose password is "" (mosquitto_passwd 2.0.11 -b FILE empty ""): the file matches it,
// but the broker's verifier refuses it, as Debian's mosquitto does (test_25 compares the two).
TEST(PasswordFileVerifier, EmptyPasswordIsNoPasswordAsInMosquitto) {
  constexpr std::string_view kEmpty =
      "$7$101$RzZGlroSuOTma8vd$DQgHWGX0MekACdtWjK+ZSCFZrTf5+pg/RBOUm219cLvF0kvLJZD5Pe/X/eLyZhKqdsIEQr8v6p+"
      "QUPrcxcIZtg==";
  std::vector<Diagnostic> diagnostics;
  auto file = parse("empty:" + std::string(kEmpty) + "\nbob:" + std::string(kHunter2) + "\n", &diagnostics);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->verify("empty", ""), PasswordFile::Result::kAccepted);
  PasswordFileVerifier verifier(file);
  EXPECT_FALSE(verifier.verify("empty", true, ""));
  EXPECT_FALSE(verifier.verify("empty", false, ""));
  EXPECT_FALSE(verifier.verify("empty", true, "x"));
  EXPECT_FALSE(verifier.verify("bob", true, ""));
  EXPECT_FALSE(verifier.verify("bob", false, ""));
  EXPECT_TRUE(verifier.verify("bob", true, "hunter2"));
}

class PasswordFileOnDisk : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/coremq-pwfile-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    directory_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(directory_); }
  std::string write(const std::string& name, const std::string& text) {
    std::string path = directory_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::string directory_;
};

TEST_F(PasswordFileOnDisk, LoadsAndNamesTheFileInErrors) {
  std::string path = write("pwfile", "bob:" + std::string(kHunter2) + "\nx:plain\n");
  std::vector<Diagnostic> diagnostics;
  auto file = load_password_file(path, {}, &diagnostics);
  ASSERT_NE(file, nullptr);
  EXPECT_EQ(file->path(), path);
  EXPECT_EQ(file->verify("bob", "hunter2"), PasswordFile::Result::kAccepted);
  ASSERT_EQ(diagnostics.size(), 1u);
  EXPECT_EQ(diagnostics[0].where, path + ":2");

  diagnostics.clear();
  EXPECT_EQ(load_password_file(directory_ + "/missing", {}, &diagnostics), nullptr);
  EXPECT_EQ(formatted(diagnostics).back(),
            directory_ + "/missing: error: cannot open: No such file or directory");

  diagnostics.clear();
  EXPECT_EQ(load_password_file(directory_, {}, &diagnostics), nullptr);
  EXPECT_EQ(formatted(diagnostics).back(), directory_ + ": error: not a regular file");

  diagnostics.clear();
  PasswordFileLimits limits;
  limits.file_bytes_max = 10;
  EXPECT_EQ(load_password_file(path, limits, &diagnostics), nullptr);
  EXPECT_NE(formatted(diagnostics).back().find("above the limit 10"), std::string::npos);
}

// Interop: Debian's mosquitto_passwd writes the file, PasswordFile reads and verifies it.
TEST_F(PasswordFileOnDisk, VerifiesAFileWrittenByMosquittoPasswd) {
  const char* tool = "/usr/bin/mosquitto_passwd";
  if (access(tool, X_OK) != 0) GTEST_SKIP() << tool << " is not installed (apt-get install mosquitto)";
  std::string path = directory_ + "/mosquitto.pw";
  std::string commands = std::string(tool) + " -c -b " + path + " alice 'correct horse' && " + tool +
                         " -H sha512 -b " + path + " bob 'b@ttery:staple' && " + tool + " -b " + path +
                         " carol '' && " + tool + " -I 2000 -b " + path + " dave 'x y z'";
  ASSERT_EQ(std::system(commands.c_str()), 0) << commands;
  std::vector<Diagnostic> diagnostics;
  auto file = load_password_file(path, {}, &diagnostics);
  ASSERT_NE(file, nullptr) << ::testing::PrintToString(formatted(diagnostics));
  EXPECT_TRUE(diagnostics.empty()) << ::testing::PrintToString(formatted(diagnostics));
  ASSERT_EQ(file->size(), 4u);
  EXPECT_EQ(file->find("alice")->scheme, HashScheme::kSha512Pbkdf2);
  EXPECT_EQ(file->find("bob")->scheme, HashScheme::kSha512);
  EXPECT_EQ(file->find("dave")->iterations, 2000u);
  EXPECT_EQ(file->verify("alice", "correct horse"), PasswordFile::Result::kAccepted);
  EXPECT_EQ(file->verify("alice", "correct horse "), PasswordFile::Result::kWrongPassword);
  EXPECT_EQ(file->verify("bob", "b@ttery:staple"), PasswordFile::Result::kAccepted);
  EXPECT_EQ(file->verify("bob", "b@ttery"), PasswordFile::Result::kWrongPassword);
  EXPECT_EQ(file->verify("carol", ""), PasswordFile::Result::kAccepted);
  EXPECT_EQ(file->verify("carol", "x"), PasswordFile::Result::kWrongPassword);
  EXPECT_EQ(file->verify("dave", "x y z"), PasswordFile::Result::kAccepted);
  EXPECT_EQ(file->verify("dave", "xyz"), PasswordFile::Result::kWrongPassword);
}

}  // namespace
}  // namespace coremq::auth
