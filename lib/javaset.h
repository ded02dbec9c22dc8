/* javaset: the order a java.util.HashSet iterates over its elements, for
 * answers that must list a set as a REGARDS service (Java) lists it. */
#ifndef FERRY_JAVASET_H
#define FERRY_JAVASET_H

#include <stddef.h>
#include <stdint.h>

/* java.lang.String.hashCode of UTF-8 text s (over its UTF-16 code units;
 * a byte that is not UTF-8 counts as U+FFFD, as Java decodes it). */
uint32_t javaset_string_hash(const char *s);

/* The n strings s as a HashSet built by adding them in this order (the
 * default capacity of 16, doubled as it fills): order[] receives the
 * indices of the elements kept (the first of equal strings), in the
 * order the set iterates over them; returns how many. Each element's
 * hash is its String.hashCode plus add: 0 for a set of strings, 31 for
 * objects hashed with Objects.hash(name). */
size_t javaset_order(const char *const *s, size_t n, uint32_t add, size_t *order);

#endif
