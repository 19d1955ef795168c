# Turn a text file into a C string:
#   cmake -DIN=halo.yaml -DOUT=x.c [-DNAME=halo_default_config] -P embed.cmake
# defines `const char NAME[]` (NUL-terminated) and `const size_t NAME_len`.
if(NOT NAME)
  set(NAME halo_default_config)
endif()
file(READ ${IN} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
get_filename_component(src ${IN} NAME)
file(WRITE ${OUT} "/* generated from ${src} by core/embed.cmake */\n#include <stddef.h>\nconst char ${NAME}[] = {${bytes} 0x00};\nconst size_t ${NAME}_len = sizeof(${NAME}) - 1;\n")
