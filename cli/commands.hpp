#pragma once
// The `banyan` subcommands. Each takes the arguments after its name and returns the exit code.

namespace banyan::cli {

int generate_command(int argc, char** argv);
int tokenize_command(int argc, char** argv);
int bench_command(int argc, char** argv);
int convert_command(int argc, char** argv);
int serve_command(int argc, char** argv);
int client_command(int argc, char** argv);
int launch_command(int argc, char** argv);
int stage_command(int argc, char** argv);

}  // namespace banyan::cli
