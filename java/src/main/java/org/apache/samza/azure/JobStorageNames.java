package org.apache.samza.azure;

import org.apache.samza.azure.jni.Native;
import org.apache.samza.azure.jni.PayloadLayout;
import org.apache.samza.azure.jni.Payloads;

/**
 * Operator tool: {@code java -cp <our jar>:<samza and slf4j jars>
 * org.apache.samza.azure.JobStorageNames <job.name> [job.id]} prints where a job's state lives in
 * its storage account, to inspect it or to remove it (see docs/operations.md). Makes no request.
 */
public final class JobStorageNames {
  private JobStorageNames() {}

  public static void main(String[] args) {
    if (args.length < 1 || args.length > 2) {
      System.err.println("usage: JobStorageNames <job.name> [job.id (Samza's default 1)]");
      System.exit(2);
    }
    // No job.id argument is a config without job.id: native applies the same default and checks
    // as the coordinator, so the tool cannot name other storage than the job uses.
    String[] names = Native.jobStorageNames(args[0], args.length > 1 ? args[1] : null);
    PayloadLayout l = Payloads.JOB_STORAGE_NAMES;
    l.check(names.length);
    System.out.println(
        "container="
            + names[l.index("container")]
            + "   (blob jobmodel: JobModel document, leader lease)");
    System.out.println("membershipTable=" + names[l.index("table")]);
    System.out.println("checkpointTable=" + names[l.index("checkpoint_table")]);
  }
}
