# check_readme_example.cmake - the README's C example is examples/quickstart.c, which CTest
# builds and runs (example_quickstart), so the code a new user copies is known to work.
#
#   cmake -DREADME=<README.md> -DEXAMPLE=<examples/quickstart.c> -P check_readme_example.cmake
#
# Fails if the README's first ```c block is not, byte for byte, a part of the example.
file(READ "${README}" readme)
file(READ "${EXAMPLE}" example)
string(FIND "${readme}" "```c\n" start)
if(start LESS 0)
    message(FATAL_ERROR "${README}: no ```c block")
endif()
math(EXPR start "${start} + 5")
string(SUBSTRING "${readme}" ${start} -1 rest)
string(FIND "${rest}" "```" end)
string(SUBSTRING "${rest}" 0 ${end} block)
string(FIND "${example}" "${block}" at)
if(at LESS 0)
    message(FATAL_ERROR "The README's C example is not ${EXAMPLE}: copy the file's code into README.md "
                        "(or the README's into the file), so that what users copy is what CTest runs.")
endif()
