#pragma once
// A few short stories in the TinyStories style, written for Banyan, long enough for 512 tokens
// with the demo tokenizer: "real text" for the teacher-forced accuracy checks (bench, tests).
namespace banyan {

// Story openings for the demo pair (TinyStories style).
inline constexpr const char* kStoryOpenings[] = {
    "Once upon a time",
    "Lily and her mom went to the park. Lily saw",
    "Tim had a big red ball. One day,",
    "There was a little dog named Max. Max liked to",
    "One morning, Sam woke up and looked out the window.",
    "The cat sat on the mat and",
    "Anna wanted to bake a cake for her friend.",
    "In a small town, there lived a kind old man who",
};


inline constexpr const char* kStories =
    "Once upon a time, there was a little girl named Mia. Mia loved to play in the garden with her dog, Sparky. "
    "One sunny day, Mia found a small blue bird under a big tree. The bird could not fly because its wing was hurt. "
    "Mia was sad for the bird. She said, \"Don't worry, little bird. I will help you.\" She took the bird home and "
    "gave it some water and seeds. Her mom helped her make a soft bed from an old box and a warm blanket.\n"
    "Every day, Mia checked on the bird. She sang songs to it and told it stories about the sky. After many days, "
    "the bird began to move its wing again. It hopped around the box and chirped happily. Mia clapped her hands. "
    "\"You are getting better!\" she said.\n"
    "One morning, Mia took the bird outside. She opened her hands, and the bird flapped its wings. It flew up to "
    "the big tree and sang a beautiful song. Mia smiled and waved. \"Goodbye, friend!\" she called. The bird came "
    "back to visit her every spring, and Mia was always happy to see it.\n"
    "Tom was a boy who liked to build things. He had a big box of blocks in his room. One day, he wanted to build "
    "the tallest tower in the world. He put one block on top of another, and another, and another. The tower grew "
    "taller and taller. His little sister, Lily, watched him with big eyes.\n"
    "\"Can I help?\" Lily asked. Tom did not want help at first. He wanted to do it all by himself. But then the "
    "tower began to shake. Lily held the bottom of the tower with her small hands, and it stopped shaking. Tom "
    "smiled at his sister. \"Thank you, Lily. We can build it together,\" he said.\n"
    "They worked together all afternoon. When Mom came in, she saw a tower that was taller than Tom. \"Wow! That is "
    "the best tower I have ever seen,\" Mom said. Tom and Lily laughed and gave each other a big hug. They learned "
    "that it is more fun to build things with a friend.\n"
    "There was a fat orange cat named Max who lived on a farm. Max liked to sleep in the warm sun all day long. "
    "The other animals on the farm were busy. The hens laid eggs, the cows gave milk, and the dog kept the sheep "
    "safe. Max just slept. One day, a little mouse ran into the barn and started to eat the corn.\n"
    "The farmer was upset. \"Who will stop the mouse?\" he asked. The hens were too small, the cows were too slow, "
    "and the dog was too loud. Max opened one eye. He stretched his legs and walked quietly into the barn. The mouse "
    "saw Max and ran away as fast as it could. The farmer was so happy that he gave Max a big bowl of fresh milk. "
    "From that day on, Max still slept in the sun, but he always kept one ear open for mice.";

}  // namespace banyan::test
