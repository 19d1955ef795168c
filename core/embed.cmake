# Turn a text file into a C string: cmake -DIN=halo.yaml -DOUT=x.c -P embed.cmake
file(READ ${IN} content HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${content}")
file(WRITE ${OUT} "/* generated from halo.yaml by core/embed.cmake */\n#include <stddef.h>\nconst char halo_default_config[] = {${bytes} 0x00};\nconst size_t halo_default_config_len = sizeof(halo_default_config) - 1;\n")
