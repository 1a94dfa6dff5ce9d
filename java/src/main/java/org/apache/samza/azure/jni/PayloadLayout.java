package org.apache.samza.azure.jni;

import java.util.Arrays;
import java.util.Collections;
import java.util.List;

/**
 * The fields of one structured result that crosses the boundary as a flat array: {@code head} once,
 * then {@code each} repeated to the end. Decoders find a field's position by its name here, and
 * {@code PayloadContractTest} checks every layout against the library's ({@code
 * src/jni/payloads.rs}).
 */
public final class PayloadLayout {
  public final String name;
  final List<String> head;
  final List<String> each;

  PayloadLayout(String name, List<String> head, List<String> each) {
    this.name = name;
    this.head = Collections.unmodifiableList(head);
    this.each = Collections.unmodifiableList(each);
  }

  static PayloadLayout of(String name, String... head) {
    return new PayloadLayout(name, Arrays.asList(head), Collections.<String>emptyList());
  }

  PayloadLayout thenEach(String... fields) {
    return new PayloadLayout(name, head, Arrays.asList(fields));
  }

  /** The position of a {@code head} field. */
  public int index(String field) {
    return position(head, field, "has no field");
  }

  /** Where the repeated fields start. */
  public int headSize() {
    return head.size();
  }

  /** The position of a repeated field within its group. */
  public int eachIndex(String field) {
    return position(each, field, "repeats no field");
  }

  private int position(List<String> fields, String field, String missing) {
    int i = fields.indexOf(field);
    if (i < 0) {
      throw new IllegalArgumentException(name + " " + missing + " '" + field + "': " + fields);
    }
    return i;
  }

  /** The number of fields in one repeated group. */
  public int groupSize() {
    return each.size();
  }

  /** Throws unless an array of {@code length} fields has this layout. */
  public void check(int length) {
    boolean fits =
        each.isEmpty()
            ? length == head.size()
            : length >= head.size() && (length - head.size()) % each.size() == 0;
    if (!fits) {
      throw new IllegalStateException(
          name + " arrived with " + length + " fields; expected " + describe());
    }
  }

  /** {@code name: head,fields | repeated,fields}, as the library describes its layouts. */
  String describe() {
    return name + ": " + String.join(",", head) + " | " + String.join(",", each);
  }
}
